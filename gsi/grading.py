"""Answer extraction and grading.

A grader takes a finished solution's text and its problem and returns a :class:`Grade`:
the answer it read from the text (recorded in ``results.jsonl``) and whether that
answer matches the problem's reference. Graders are picked by name in the data set
config (``dataset.grader``), see :data:`GRADERS`:

- ``exact_number``: the toy world's plain numbers, from the last ``\\boxed{}``.
- ``math_verify``: symbolic equivalence (math-verify) of the last ``\\boxed{}``,
  run in a helper process with a per-call time limit (see :mod:`gsi.math_verify_worker`).
- ``gsm8k``: numbers with commas, ``$``, units or trailing zeros; ``\\boxed{}`` or else
  the last number in the text.
- ``multiple_choice``: a letter (MMLU-STEM) from ``\\boxed{B}``, ``(B)``, ``B.``,
  "the answer is B", or the text of one of the options listed in the question.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Protocol

from gsi.errors import ConfigError
from gsi.types import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grade:
    answer: str | None  # what was read from the solution (None: no answer found)
    correct: bool


class Grader(Protocol):
    def __call__(self, text: str, problem: Problem) -> Grade: ...


# ------------------------------------------------------------------ extraction
def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``, braces balanced; None if absent."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def exact_number(predicted: str | None, reference: str) -> bool:
    """Numeric equality of two plain numbers (``"012"`` equals ``"12"``)."""
    if predicted is None:
        return False
    try:
        return float(predicted) == float(reference)
    except ValueError:
        return predicted.strip() == reference.strip()


@dataclass(frozen=True)
class BoxedGrader:
    """Reads the last ``\\boxed{}`` and compares it with ``match(answer, reference)``."""

    match: Callable[[str, str], bool]

    def __call__(self, text: str, problem: Problem) -> Grade:
        answer = extract_boxed(text)
        ok = answer is not None and bool(problem.answer.strip()) and self.match(answer, problem.answer)
        return Grade(answer, bool(ok))


# ------------------------------------------------------------------ GSM8K numbers
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")


def parse_number(text: str) -> Fraction | None:
    """The number a short answer states: ``"$1,234.50"``, ``"-7"``, ``"18 \\text{ dollars}"``,
    ``"\\frac{3}{4}"`` -> exact fractions; the last number if several; None if none."""
    s = text.replace("\\!", "").replace("\\,", "").replace("{,}", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # thousands separators
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    frac = _FRAC.findall(s)
    if frac:
        num, den = frac[-1]
        return Fraction(int(num), int(den)) if int(den) else None
    numbers = _NUMBER.findall(s)
    return Fraction(numbers[-1]) if numbers else None


def gsm8k_grade(text: str, problem: Problem) -> Grade:
    """GSM8K: the boxed answer, or else the last number in the solution, equals the reference."""
    boxed = extract_boxed(text)
    answer = boxed if boxed is not None else (_NUMBER.findall(text.replace(",", "")) or [None])[-1]
    if answer is None:
        return Grade(None, False)
    got, ref = parse_number(answer), parse_number(problem.answer)
    return Grade(answer, got is not None and ref is not None and got == ref)


# ------------------------------------------------------------------ multiple choice
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s+(.+?)\s*$", re.MULTILINE)
_LETTER = re.compile(r"^\(?([A-J])\)?(?:[.):]|\s|$)")
_STATED = re.compile(r"answer(?:\s+is)?\s*[:=]?\s*(?:option\s+)?\(?\b([A-J])\b\)?", re.IGNORECASE)


def _plain(s: str) -> str:
    s = re.sub(r"\\text(?:bf|it)?\{([^{}]*)\}", r"\1", s)
    return re.sub(r"\s+", " ", s.replace("$", "")).strip().rstrip(".").strip().lower()


def options_of(question: str) -> dict[str, str]:
    """The lettered options listed in a question (``"A. 4\\nB. 8"``)."""
    return {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(question)}


def extract_choice(text: str, options: dict[str, str]) -> str | None:
    """The chosen letter: from the last ``\\boxed{}`` (a letter, ``(B)``, ``B.``, ``\\text{B}``
    or an option's text), else from the last "the answer is B" / "Answer: (B)"."""
    allowed = set(options) or set("ABCD")
    boxed = extract_boxed(text)
    if boxed is not None:
        plain = _plain(boxed)
        m = _LETTER.match(plain.upper())
        if m and m.group(1) in allowed:
            return m.group(1)
        for letter, option in options.items():
            if plain == _plain(option):
                return letter
    stated = [m.group(1).upper() for m in _STATED.finditer(text) if m.group(1).upper() in allowed]
    return stated[-1] if stated else None


def choice_grade(text: str, problem: Problem) -> Grade:
    letter = extract_choice(text, options_of(problem.question or problem.prompt))
    return Grade(letter, letter is not None and letter == problem.answer.strip().upper())


# ------------------------------------------------------------------ math-verify
def _for_math_verify(answer: str) -> str:
    """Conventions math-verify does not apply itself: a percent sign states the number
    (``50\\%`` is 50), a sentence-final period is not a decimal point."""
    s = answer.strip().replace("\\%", "").replace("%", "")
    return s[:-1].rstrip() if s.endswith(".") and not s.endswith("..") else s


class MathVerifyGrader:
    """Symbolic equivalence of the last ``\\boxed{}`` with the reference, by math-verify.

    math-verify's own time limit uses SIGALRM, which works only in a process's main
    thread. Here math-verify runs with its limits off in a helper process
    (``python -m gsi.math_verify_worker``, started on first use, kept for later calls);
    a call that takes longer than ``timeout_s`` kills that process, counts as incorrect
    and the next call starts a fresh one. Safe from any thread and in worker processes.
    """

    def __init__(self, timeout_s: float = 5.0, startup_timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.timeouts = 0
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __call__(self, text: str, problem: Problem) -> Grade:
        answer = extract_boxed(text)
        if answer is None or not problem.answer.strip():
            return Grade(answer, False)
        return Grade(answer, self.equivalent(answer, problem.answer))

    def equivalent(self, answer: str, reference: str) -> bool:
        """True iff math-verify finds them equal within ``timeout_s`` (a timeout is False)."""
        request = json.dumps({"gold": _for_math_verify(reference), "pred": _for_math_verify(answer)})
        with self._lock:
            proc = self._ensure_started()
            try:
                proc.stdin.write((request + "\n").encode())
                proc.stdin.flush()
                reply = self._read_line(proc, self.timeout_s)
            except (BrokenPipeError, OSError):
                reply = None
            if reply is None:
                self.timeouts += 1
                log.warning("math-verify took over %.1fs on %r vs %r: counted incorrect", self.timeout_s,
                            answer[:80], reference[:80])
                self._stop()
                return False
        return reply.strip() == "1"

    def _ensure_started(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gsi.math_verify_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if self._read_line(self._proc, self.startup_timeout_s) != "ready":
            self._stop()
            raise RuntimeError("the math-verify helper process did not start; is math-verify installed "
                               "(pip install -e '.[data]')?")
        return self._proc

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

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                f.close()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# ------------------------------------------------------------------ registry
GRADERS: dict[str, Callable[[], Grader]] = {
    "exact_number": lambda: BoxedGrader(exact_number),
    "math_verify": MathVerifyGrader,
    "gsm8k": lambda: gsm8k_grade,
    "multiple_choice": lambda: choice_grade,
}


def get_grader(name: str) -> Grader:
    """A fresh grader by name (``dataset.grader``)."""
    try:
        factory = GRADERS[name]
    except KeyError:
        raise ConfigError(f"dataset.grader={name!r} is not a grader; choose from {sorted(GRADERS)}") from None
    return factory()
