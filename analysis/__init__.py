"""Sweep analysis: collect run directories into tables, plots and W&B dashboards.

``python -m analysis.report PATH...`` and ``python -m analysis.dashboards``.
"""
