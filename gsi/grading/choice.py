"""Multiple choice (MMLU-STEM): which option letter a solution chose.

Rules, in order, each recorded by name:

- ``boxed``: the final box (:mod:`gsi.grading.extract`) holds a letter in any dress
  (``B``, ``(B)``, ``B.``, ``\\text{B}``, ``\\mathrm{B}``, ``B) 29``, ``option B``);
  ``boxed_option_text``: it holds the text of one listed option (``\\boxed{29}``).
- ``answer_sentence``: the last statement of a choice: "the (final/correct) answer is
  (B)", "Answer: **B**", "the correct option is C", "option (C) is correct", "I choose
  C" (markdown ``**`` and ``\\text{}`` removed first); ``answer_option_text``: such a
  statement followed by an option's text.
- ``bare_letter``: the solution, or its last line, is only a letter (``C``, ``(C)``, ``C.``).

A letter is read only as a capital standing alone (followed by punctuation, a line end or
an option-style separator), or inside parentheses: "the answer is a prime" and "the answer
is A prime number" read no letter; and only letters of the listed options count.
"""

from __future__ import annotations

import re

from gsi.grading.extract import NOTHING, Extracted, final_boxes
from gsi.types import Problem

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.):]\s+(.+?)\s*$", re.MULTILINE)
_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
# a standalone capital: followed by the end, punctuation, a line break or an option separator
_ALONE = r"(?:\(([A-J])\)|\b([A-J])(?=\s*$|\s*[.,;:!)\]*]|\s*\n|\s+[-–—]\s|\s+(?:is|because|since|as|which)\b))"
_STATEMENTS = [
    re.compile(r"answer\s*(?:is|:|=|would\s+be|should\s+be)?\s*:?\s*(?:option|choice)?\s*:?\s*" + _ALONE, re.I),
    re.compile(r"correct\s+(?:option|choice|answer|letter)\s*(?:is|:)?\s*:?\s*(?:option\s+)?" + _ALONE, re.I),
    re.compile(r"(?:option|choice)\s+" + _ALONE + r"\s*(?:is|would\s+be)\s+(?:the\s+)?(?:correct|right|answer)", re.I),
    re.compile(r"\bI\s+(?:would\s+)?(?:choose|select|pick|go\s+with)\s+(?:option\s+)?" + _ALONE, re.I),
]
_STATED_TEXT = re.compile(r"answer\s*(?:is|:)\s*:?\s*", re.I)
_BOXED_LETTER = re.compile(r"^(?:option\s+|choice\s+)?\(?([A-J])\)?(?:[.):]\s*.*|\s+.*)?$", re.I | re.S)
_BARE = re.compile(r"^\(?([A-J])\)?\.?$")


def _clean(s: str) -> str:
    for _ in range(3):
        s = _WRAP.sub(r"\1", s)
    return s.replace("**", "").replace("__", "")


def _plain(s: str) -> str:
    s = _clean(s).replace("$", "").replace("\\%", "%").replace("\\ ", " ")
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip().lower()


def options_of(question: str) -> dict[str, str]:
    """The lettered options listed in a question (``"A. 4\\nB. 8"``)."""
    return {m.group(1): m.group(2) for m in _OPTION_LINE.finditer(question)}


def _by_text(answer: str, options: dict[str, str]) -> str | None:
    plain = _plain(answer)
    hits = [letter for letter, option in options.items() if plain and plain == _plain(option)]
    return hits[0] if len(hits) == 1 else None


def extract_choice_rule(text: str, options: dict[str, str]) -> Extracted:
    """The chosen letter and the rule that read it (see the module docstring)."""
    allowed = set(options) or set("ABCD")
    for content in reversed(final_boxes(text)):
        clean = _clean(content).strip().strip("$").strip()
        m = _BOXED_LETTER.match(clean)
        if m and m.group(1).upper() == m.group(1) and m.group(1) in allowed:
            return Extracted(m.group(1), "boxed")
        letter = _by_text(content, options)
        if letter:
            return Extracted(letter, "boxed_option_text")
    clean = _clean(text)
    stated = []
    for pattern in _STATEMENTS:
        for m in pattern.finditer(clean):
            letter = m.group(1) or m.group(2)
            if letter in allowed:
                stated.append((m.end(), letter))
    for m in _STATED_TEXT.finditer(clean):
        line = clean[m.end():].split("\n", 1)[0]
        letter = _by_text(line, options)
        if letter:
            stated.append((m.end(), letter + "\0"))
    if stated:
        letter = max(stated)[1]
        return Extracted(letter.rstrip("\0"), "answer_option_text" if letter.endswith("\0") else "answer_sentence")
    lines = [ln.strip() for ln in clean.strip().splitlines() if ln.strip()]
    if lines:
        m = _BARE.match(lines[-1].strip("$ "))
        if m and m.group(1) in allowed:
            return Extracted(m.group(1), "bare_letter")
    return NOTHING


def extract_choice(text: str, options: dict[str, str]) -> str | None:
    """The chosen letter, or None."""
    return extract_choice_rule(text, options).answer


def grade_choice(extracted: Extracted, problem: Problem) -> bool:
    return extracted.answer is not None and extracted.answer == problem.answer.strip().upper()
