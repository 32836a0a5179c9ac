"""Math conventions the graders apply before symbolic equivalence, each decided here.

- **Unicode minus** (``−``, U+2212) is ``-``; ``\\dfrac``/``\\tfrac`` are ``\\frac``.
- **Percent**: ``50\\%``, ``50%``, ``50 percent``, ``50\\text{ percent}``, ``50 pct`` state
  the number 50 (MATH and GSM8K references write the number a "what percent" asks for).
- **Empty set**: ``\\emptyset``, ``\\varnothing``, ``\\O``, ``∅``, ``\\{\\}`` are one answer;
  words ("none", "no solution") are not the empty set.
- **Clock times**: a reference ``h:mm`` (optionally a.m./p.m., in or out of ``\\text{}``)
  is a time, never a ratio: equal iff hours and minutes are equal, and a.m./p.m. agree
  when both name one (``4:30`` vs ``2:15`` differ; ``\\text{4:30 p.m.}`` equals
  ``4:30 \\text{ p.m.}``).
- **Complex numbers**: where the problem is about them (its statement says "complex" or
  "imaginary", or writes ``i^2 = -1`` or ``\\mathbb{C}``, or the reference is of the form
  ``a + bi``), ``i`` is the imaginary unit (``(1+i)^2`` equals ``2i``); elsewhere ``i``
  is an ordinary symbol.
- A sentence-final period is not a decimal point (``5.`` is 5).
"""

from __future__ import annotations

import re

_EMPTY = re.compile(r"\\varnothing|\\emptyset|\\O(?![A-Za-z])|∅|\\\{\s*\\\}|\\left\\\{\s*\\right\\\}")
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*(?:percent(?:age)?|pct)\.?\s*\}|\b(?:percent(?:age)?|pct)\b\.?)")
_WRAP = re.compile(r"\\(?:text|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})\s*(?:([ap])\.?\s*m\.?)?$", re.IGNORECASE)
_COMPLEX_QUESTION = re.compile(r"complex|imaginary|i\^2\s*=\s*-1|i\^\{2\}\s*=\s*-1|\\mathbb\{C\}", re.IGNORECASE)
_COMPLEX_REFERENCE = re.compile(r"(?:^|[\d\s+\-(}])i\s*$|^-?i$|\\i\b|\d\s*i\b")


def normalize(answer: str) -> str:
    """The spellings above made one (minus, fractions, percent, empty set, final period)."""
    s = answer.strip().replace("\u2212", "-").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _PERCENT.sub("", s)
    s = _EMPTY.sub(r"\\emptyset", s)
    s = s.strip()
    return s[:-1].rstrip() if s.endswith(".") and not s.endswith("..") else s


def clock_time(answer: str) -> tuple[int, int, str | None] | None:
    """``(hours, minutes, "a" | "p" | None)`` of an answer written as a clock time, else None."""
    s = answer.strip().strip("$").strip()
    for _ in range(2):
        s = _WRAP.sub(r" \1 ", s)
    s = re.sub(r"\s+", " ", s.replace("\\,", " ").replace("\\ ", " ").replace("~", " ")).strip().rstrip(",")
    m = _TIME.match(s)
    if m is None:
        return None
    return int(m[1]), int(m[2]), (m[3] or "").lower() or None


def times_equal(answer: str, reference: str) -> bool | None:
    """The clock-time decision when the reference is a time (None: it is not one)."""
    ref = clock_time(reference)
    if ref is None:
        return None
    got = clock_time(answer)
    if got is None:
        return False
    same_clock = got[:2] == ref[:2]
    return same_clock and (got[2] is None or ref[2] is None or got[2] == ref[2])


def about_complex_numbers(question: str, reference: str) -> bool:
    """Is ``i`` the imaginary unit in this problem (see the module docstring)?"""
    return bool(_COMPLEX_QUESTION.search(question) or _COMPLEX_REFERENCE.search(reference.strip().strip("$")))
