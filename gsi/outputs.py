"""Run outputs: append-only ``results.jsonl`` (resumable) and atomic JSON files."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from dataclasses import MISSING, fields
from typing import Any, Iterator

from gsi.types import ProblemResult

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half.
    The file gets the mode a plain ``open`` would give it (0666 less the umask), not
    ``mkstemp``'s private 0600, so colleagues read it as they read ``results.jsonl``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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


REQUIRED = tuple(f.name for f in fields(ProblemResult) if f.default is MISSING and f.default_factory is MISSING)
QUARANTINE_SUFFIX = ".bad"


NO_REFERENCE = "no reference answer in the data set"  # the data's fault: the same on every run


def is_error(row: dict[str, Any]) -> bool:
    """A row recording a failure (an exception, no reference answer), not an answer."""
    return row.get("error") is not None or row.get("stop_reason") == "error"


def _lines(path: Path) -> tuple[list[str], int]:
    """The file's lines and the index of the last non-empty one (-1 if none)."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    last = max((k for k, line in enumerate(lines) if line.strip()), default=-1)
    return lines, last


def _parse(path: Path, k: int, line: str) -> dict[str, Any]:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{k + 1}: a result row must be a JSON object; fix or remove that line")
    lacking = [name for name in REQUIRED if name not in row]
    if lacking:
        raise ValueError(f"{path}:{k + 1}: a result row without {', '.join(lacking)}; fix or remove that line")
    return row


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a results file. A last line that is not JSON (a killed writer) is skipped with
    a warning; any other bad line raises ValueError naming its line number."""
    path = Path(path)
    if not path.exists():
        return
    lines, last = _lines(path)
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield _parse(path, k, line)
        except json.JSONDecodeError:
            if k == last:
                log.warning("%s: ignoring a truncated last line (the run was interrupted)", path)
            else:
                raise ValueError(f"{path}:{k + 1}: not a JSON line; fix or remove that line") from None


class ResultStore:
    """Append-only per-problem results, flushed and synced as each problem finishes.

    Opening it repairs the file for the next append: a last line that is not JSON (torn by a
    kill, with or without its newline) is moved to ``results.jsonl.bad``; with
    ``retry_errors`` the rows that recorded an error (other than a problem without a
    reference answer, which would fail alike) are moved there too, so those problems
    are decoded again. Raises ValueError (line number) for a bad row elsewhere and OSError
    when the file cannot be written, before any model is loaded.
    """

    def __init__(self, path: Path, retry_errors: bool = False) -> None:
        self.path = Path(path)
        self.rows: dict[str, dict[str, Any]] = {}
        self.retried: list[dict[str, Any]] = []
        self._file = None
        if not self.path.exists():
            return
        with open(self.path, "a", encoding="utf-8"):  # not writable: fail now, not after decoding
            pass
        lines, last = _lines(self.path)
        keep, moved = [], []
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = _parse(self.path, k, line)
            except json.JSONDecodeError:
                if k != last:
                    raise ValueError(f"{self.path}:{k + 1}: not a JSON line; fix or remove that line") from None
                log.warning("%s:%d: a truncated last line (the run was interrupted) moved to %s",
                            self.path, k + 1, self.quarantine.name)
                moved.append(line)
                continue
            if retry_errors and is_error(row) and row.get("error") != NO_REFERENCE:
                self.retried.append(row)
                moved.append(line)
                continue
            if row["problem_id"] not in self.rows:
                self.rows[row["problem_id"]] = row
            keep.append(line)
        if self.retried:
            log.warning("%s: %d problems errored before and are retried (retry_errors=false keeps them)",
                        self.path, len(self.retried))
        if moved:
            with open(self.quarantine, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in moved))
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))
        elif lines[-1] != "":  # a complete last row whose newline was lost
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n")

    @property
    def quarantine(self) -> Path:
        return self.path.with_name(self.path.name + QUARANTINE_SUFFIX)

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
                pass  # which the next run moves aside (see __init__) and recomputes
            self._file = None


def finished_metrics(run_dir: Path) -> dict | None:
    """The metrics of a finished run (``metrics.json`` is written last, atomically), else None."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "num_problems" in metrics else None
