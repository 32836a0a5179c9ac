"""Killable helper processes that run the symbolic graders (math-verify, PRM800K's).

Symbolic equivalence can take unbounded time on a pathological answer, and math-verify's
own time limit uses SIGALRM, which works only in a process's main thread. So the
equivalence checks run in helper processes (``python -m gsi.grading.worker``), started
on first use and kept: a request that takes longer than ``timeout_s`` kills its helper,
counts as "not equal", and the next request starts a fresh one. ``workers`` helpers
serve that many threads at once (the loop's grading pool); safe from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)


class HelperPool:
    """``workers`` helper processes answering equivalence requests with a time limit."""

    def __init__(self, kinds: tuple[str, ...], workers: int = 2, timeout_s: float = 5.0,
                 startup_timeout_s: float = 120.0) -> None:
        self.kinds = kinds
        self.workers = workers
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.timeouts = 0
        self._count = threading.Lock()
        self._free: queue.LifoQueue[subprocess.Popen | None] = queue.LifoQueue()  # warm helpers first
        self._all: set[subprocess.Popen] = set()
        for _ in range(workers):
            self._free.put(None)

    def equal(self, request: dict) -> bool:
        """True iff the helper answers "equal" within ``timeout_s`` (a timeout is False)."""
        proc = self._free.get()
        try:
            proc = self._started(proc)
            try:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
                reply = self._read_line(proc, self.timeout_s)
            except (BrokenPipeError, OSError):
                reply = None
            if reply is None:
                with self._count:
                    self.timeouts += 1
                log.warning("grading took over %.1fs on %r vs %r: counted incorrect", self.timeout_s,
                            str(request.get("pred"))[:80], str(request.get("gold"))[:80])
                self._stop(proc)
                proc = None
                return False
            return reply == "1"
        finally:
            self._free.put(proc)

    def _started(self, proc: subprocess.Popen | None) -> subprocess.Popen:
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            self._stop(proc)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gsi.grading.worker", *self.kinds],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._all.add(proc)
        if self._read_line(proc, self.startup_timeout_s) != "ready":
            self._stop(proc)
            raise RuntimeError(f"the grading helper process ({', '.join(self.kinds)}) did not start; are "
                               "math-verify and mathruler installed (pip install -e '.[data]')?")
        return proc

    @staticmethod
    def _read_line(proc: subprocess.Popen, timeout: float) -> str | None:
        """One reply line, or None if none came within ``timeout`` or the process died."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                line = proc.stdout.readline()
                return line.decode().strip() if line else None

    def _stop(self, proc: subprocess.Popen) -> None:
        self._all.discard(proc)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            f.close()

    def close(self) -> None:
        """Stop every helper (idle ones at once; later requests start fresh ones)."""
        for proc in list(self._all):
            self._stop(proc)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
