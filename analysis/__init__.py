"""Analysis: sweep reports and W&B dashboards, the exactness study, the benchmark.

``python -m analysis.report PATH...``, ``python -m analysis.dashboards``,
``python -m analysis.exactness``, ``python -m analysis.benchmark``.
"""
