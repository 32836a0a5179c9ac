"""Run outputs: append-only ``results.jsonl`` (resumable) and atomic JSON files."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from gsi.types import ProblemResult

log = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a results file; a torn last line (a killed writer) is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if k >= len(lines) - 2:
                log.warning("%s: ignoring a truncated last line (the run was interrupted)", path)
            else:
                raise ValueError(f"{path}:{k + 1}: not a JSON line; fix or remove that line") from None


class ResultStore:
    """Append-only per-problem results, flushed and synced as each problem finishes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {}
        for row in read_results(self.path):
            self.rows.setdefault(row["problem_id"], row)
        self._repair_tail()
        self._file = None

    def _repair_tail(self) -> None:
        """Cut a torn last line so the next append starts on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as f:
            f.truncate(keep)

    @property
    def finished(self) -> set[str]:
        return set(self.rows)

    def append(self, result: ProblemResult) -> None:
        if result.problem_id in self.rows:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        row = result.to_json()
        self._file.write(json.dumps(row, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows[result.problem_id] = row

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # a full disk: what did not reach the file is a torn line,
                pass  # which the next run drops (see _repair_tail) and recomputes
            self._file = None


def finished_metrics(run_dir: Path) -> dict | None:
    """The metrics of a finished run (``metrics.json`` is written last, atomically), else None."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "num_problems" in metrics else None
