"""Data sets as lists of :class:`~gsi.types.Problem`, all under one name.

- :mod:`gsi.data.toy`: the embedded toy world's problems (``dataset=toy_arith``);
- :mod:`gsi.data.hub`: benchmarks through ``datasets.load_dataset`` (``dataset=math500`` ...);
- :mod:`gsi.data.select`: the stable ``limit`` / shard selection every run applies.

A new data set is a class with ``load() -> list[Problem]`` named by ``_target_`` in
``conf/dataset/``; see docs/ARCHITECTURE.md.
"""

from gsi.data.select import select, shard_of
from gsi.data.toy import ToyArithmetic

__all__ = ["ToyArithmetic", "select", "shard_of"]
