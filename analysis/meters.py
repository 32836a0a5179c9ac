"""Meters for the benchmark: peak memory of the process, wall time inside engine calls."""

from __future__ import annotations

import threading
import time
from pathlib import Path


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss_kb() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_kb = max(self.peak_kb, self._rss_kb())

    def __enter__(self) -> "PeakRSS":
        self.peak_kb = self._rss_kb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self._rss_kb())


class Timed:
    """An engine whose calls add their wall time to ``clock[name]`` (``sample`` and
    ``score`` apart); every other attribute is the engine's own."""

    def __init__(self, engine, clock: dict, sample: str, score: str) -> None:
        self._engine, self._clock, self._names = engine, clock, {"sample": sample, "score": score}

    def __getattr__(self, name):
        attr = getattr(self._engine, name)
        if name not in self._names:
            return attr

        def timed(*args):
            start = time.perf_counter()
            try:
                return attr(*args)
            finally:
                key = self._names[name]
                self._clock[key] = self._clock.get(key, 0.0) + time.perf_counter() - start

        return timed


def toy_model_path(role: str) -> str:
    """The packaged toy model folder of ``role`` (small, big, prm), without the config layer."""
    import gsi.toy

    return str(Path(gsi.toy.__file__).resolve().parent / "assets" / role)
