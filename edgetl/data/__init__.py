"""Data sets, splits and the preprocessing contract applied to them."""
