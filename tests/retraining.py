"""Retraining the committed toy models for the slow reproducibility tests, in the background.

Each retraining is single-threaded (``THREADS`` of ``gsi.toy.train``), so run one after
another in the pytest process they left a core idle for most of the CI run (the PRM ≈ 24
min, the two LMs ≈ 20 min). Instead, when a session selects tests that use the
``retrained`` fixture, two child processes start at its first test, at the lowest CPU
priority: one retrains the PRM, the other the small and then the big LM (only the models
the session's tests ask for). They overlap the rest of the suite; ``tests/conftest.py``
runs the waiting tests last. A child trains with the same function and seed the test used
to call in-process, then judges the result with ``gsi.toy.quality_band.verdict`` (bit for
bit on the recorded CPU kind, else the quality band) and writes the verdict next to the
weights; a fresh process also keeps the training away from the thread binding of the
in-process vLLM engines of other tests.

    python -m tests.retraining OUT small big    # what a child runs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT

CHAINS = (("prm",), ("small", "big"))  # one child each; the PRM alone is about as long as both LMs
WAIT_S = 3 * 3600  # a child that takes longer is stuck


def retrain(which: str, out: Path) -> dict:
    """Retrain ``which`` with its recorded seed under ``out / which``; its verdict."""
    from gsi.config import ASSETS
    from gsi.toy.quality_band import verdict

    seed = int(json.loads((ASSETS / which / "train_meta.json").read_text()).get("seed", 0))
    start = time.perf_counter()
    if which == "prm":
        from gsi.toy.train_prm import train

        train(out, seed=seed, evaluate=False)
    else:
        from gsi.toy.train import train

        train(which, out, seed=seed)
    ok, why = verdict(which, out / which)
    return {"model": which, "ok": bool(ok), "why": why, "seconds": round(time.perf_counter() - start, 1)}


def verdict_path(out: Path, which: str) -> Path:
    return out / f"{which}.verdict.json"


def main(argv: list[str]) -> int:
    out, models = Path(argv[0]), argv[1:]
    for which in models:
        record = retrain(which, out)
        tmp = verdict_path(out, which).with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, verdict_path(out, which))  # a verdict file is whole or absent
        print(json.dumps(record), flush=True)
    return 0


def _lowest_priority() -> None:
    """In the child before it starts: run only on CPU time the rest of the suite leaves
    (the tests and the processes they start keep their speed and their timeouts)."""
    os.nice(19)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed here: nice 19 alone
        pass


class Retraining:
    """The background children of one pytest session (see the module docstring)."""

    def __init__(self, out: Path, models: set[str]) -> None:
        self.out = out
        self.chains = [tuple(m for m in chain if m in models) for chain in CHAINS]
        self.chains = [chain for chain in self.chains if chain]
        self.children: dict[tuple[str, ...], subprocess.Popen] = {}

    def start(self) -> None:
        for chain in self.chains:
            log = open(self.out / f"{'+'.join(chain)}.log", "w")
            self.children[chain] = subprocess.Popen(
                [sys.executable, "-m", "tests.retraining", str(self.out), *chain],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_lowest_priority,
            )
            log.close()

    def wait(self, which: str) -> tuple[Path, dict]:
        """(the retrained model's folder, its verdict); fails with the child's log when it
        stopped without one."""
        chain = next(c for c in self.children if which in c)
        child, deadline = self.children[chain], time.monotonic() + WAIT_S
        while not verdict_path(self.out, which).exists():
            if child.poll() is not None and not verdict_path(self.out, which).exists():
                tail = (self.out / f"{'+'.join(chain)}.log").read_text()[-3000:]
                raise AssertionError(f"retraining {which} stopped (exit code {child.returncode}) without a "
                                     f"verdict; the end of its log:\n{tail}")
            if time.monotonic() > deadline:
                raise AssertionError(f"retraining {which} took over {WAIT_S} s")
            time.sleep(2)
        return self.out / which, json.loads(verdict_path(self.out, which).read_text())

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
