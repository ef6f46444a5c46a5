"""One module per vendor: raw envelope in, normalized events out. Pure functions, no I/O."""
