"""The tracker interface (:class:`NullTracker`, which tracks nothing) and its running totals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig

from gsi.types import StepSummary
from gsi.types import ProblemResult



@dataclass
class _Totals:
    problems: int = 0
    correct: int = 0
    steps: int = 0
    accepted: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.problems += 1
        self.correct += int(bool(row["correct"]))
        self.steps += int(row["steps"])
        self.accepted += int(row["accepted_steps"])


class NullTracker:
    """Tracks nothing (``tracking=none``); also the interface every tracker has."""

    def __init__(self, **_: Any) -> None:
        self.totals = _Totals()

    def start(self, cfg: DictConfig, run_dir: Path, previous: Iterable[Mapping[str, Any]] = ()) -> None:
        """Begin a run; ``previous`` are the rows a resumed run already has."""
        for row in previous:
            self.totals.add(row)

    def problem(self, result: ProblemResult) -> None:
        self.totals.add(result.to_json())

    def step(self, summary: StepSummary) -> None:
        pass

    def finish(self, metrics: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> None:
        pass

    def abort(self) -> None:
        """The run failed: close the tracking run as failed."""
