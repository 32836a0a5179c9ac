"""Analyses over runs and exact worlds (tables, plots, reports)."""
