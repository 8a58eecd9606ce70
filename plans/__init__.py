"""Bluesky plans for coupon experiments, typed by couponlab's interfaces (never by vendor
classes), and their analysis callbacks."""
