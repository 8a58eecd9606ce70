"""Twin of the x-y stage that carries the profiler, probe and camera over a coupon."""
