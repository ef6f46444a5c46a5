"""Data protection: purging what is past its retention period, and erasing a candidate on request."""
