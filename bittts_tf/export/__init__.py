"""Conversion to TFLite with packed ternary weights, and the C runtime glue."""
