"""Analysis: sweep reports, shard merging and W&B dashboards, the exactness study, the benchmark.

``python -m analysis.report PATH...``, ``python -m analysis.merge``, ``python -m analysis.dashboards``,
``python -m analysis.exactness``, ``python -m analysis.benchmark``.
"""
