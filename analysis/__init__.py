"""Collect, merge and report sweep results."""
