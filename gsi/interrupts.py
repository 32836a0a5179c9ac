"""How a run ends on Ctrl-C or SIGTERM: one line saying what is saved, exit 130 / 143.

Both become exceptions where the run is (SIGTERM through :func:`sigterm_raises`), so files
are closed as on any error and ``results.jsonl`` keeps every finished problem; the same
command resumes from it exactly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from gsi.outputs import ResultStore, read_results


class Terminated(BaseException):
    """SIGTERM, raised where the run is so it ends like Ctrl-C (files closed, one line)."""


class Progress:
    """What an interrupt message reports: the run directory and the problems saved so far."""

    def __init__(self) -> None:
        self.out: Path | None = None
        self.store: ResultStore | None = None
        self.wanted: set[str] = set()
        self.total = 0

    def saved(self) -> int:
        """Rows on disk (a signal can land between a row's write and its bookkeeping)."""
        if self.store is None:
            return 0
        try:
            on_disk = {row["problem_id"] for row in read_results(self.store.path)}
        except (OSError, ValueError):
            on_disk = self.store.finished
        return len(self.wanted & on_disk)


@contextlib.contextmanager
def sigterm_raises():
    """Turn SIGTERM into :class:`Terminated` while the run lasts, unless someone (submitit, a
    caller) handles SIGTERM already or this is not the main thread."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
