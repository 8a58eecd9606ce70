"""ophyd-async devices for couponlab instruments: one package per instrument family."""
