"""Answer extraction: which part of a solution is its final answer, and the stop rule.

One documented step, shared by the math graders (each data set's grader adds its own
rules after these, see :mod:`gsi.grading.numeric` and :mod:`gsi.grading.choice`):

1. ``boxed`` / ``boxes``: the boxes (``\\boxed{}``, ``\\fbox{}``) of the final answer,
   i.e. the last box and the boxes just before it in its paragraph (paragraphs are steps,
   split by a blank line) that only delimiters, "and"/"or", commas, ``x =`` or a short
   "and" clause without math ("papers and") separate from it (``$x=\\boxed{2}$ and $x=\\boxed{5}$``; not ``\\boxed{7} ... so \\boxed{8}``).
   Several different boxes (``\\boxed{2}`` and ``\\boxed{5}``)
   are joined, as a set ``\\{2, 5\\}`` or a tuple ``(2, 5)`` where the reference is one,
   else as ``2, 5``; repeats of one box count once.
2. ``final_answer_sentence``: the last "final answer is ..." / "Final Answer: ..." sentence
   (its math if it has ``$...$``), when there is no box or it comes after the last box.

The loop's stop rule follows the same notion: a step ends the solution when it holds a
complete box with nothing after it but punctuation, math delimiters or a short closing
remark without math (:func:`ends_with_final_answer`), or a "final answer is ..." sentence.
A box in the middle of a step that goes on (more math after it) does not end the solution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOX_COMMANDS = ("\\boxed", "\\fbox")
PARAGRAPH = "\n\n"


@dataclass(frozen=True)
class Box:
    start: int  # index of the backslash of ``\boxed``
    end: int  # index just after the closing brace
    content: str


@dataclass(frozen=True)
class Extracted:
    """What a grader read from a solution and which rule found it (None: nothing)."""

    answer: str | None
    rule: str | None


NOTHING = Extracted(None, None)


def boxes(text: str) -> list[Box]:
    """Every complete box of ``text`` in order: ``\\boxed{...}`` with balanced braces (an
    unclosed box is skipped) or ``\\boxed 5`` (one token)."""
    found = []
    for m in _BOX_START.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    found.append(Box(m.start(), j + 1, text[i + 1 : j].strip()))
                    break
        else:
            token = re.match(r"[ \t]+([^\s$.,;{}]+)", text[i:])
            if token:
                found.append(Box(m.start(), i + token.end(), token.group(1)))
    return found


_BOX_START = re.compile("(?:" + "|".join(re.escape(c) for c in BOX_COMMANDS) + r")(?![A-Za-z])")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``, braces balanced; None if absent."""
    found = [b for b in boxes(text) if text.startswith("\\boxed{", b.start)]
    return found[-1].content if found else None


# What may stand between two boxes of one answer: math delimiters, "x =", "and", "or", commas.
_JOINER = re.compile(r"(?:[\s$,;&]|\\quad|\\qquad|\\\(|\\\)|\\\[|\\\]|\\text\{\s*(?:and|or)\s*\}"
                     r"|\b(?:and|or)\b|[A-Za-z](?:_\{?\w+\}?)?\s*=)*", re.IGNORECASE)


def _and_clause(between: str) -> bool:
    """A short "and" clause without math ("papers and", "for part (a) and")."""
    words = re.sub(r"\\text\s*\{([^{}]*)\}", r" \1 ", between).replace("$", " ").split()
    return "and" in words and len(words) <= 6 and not re.search(r"[\d=\\{}]", " ".join(words))


def final_boxes(text: str) -> list[str]:
    """Contents of the final answer's boxes: the last box and the boxes before it in its
    paragraph joined to it only by delimiters, "and"/"or", commas or ``x =``; repeats once."""
    found = boxes(text)
    if not found:
        return []
    group = [found[-1]]
    for b in reversed(found[:-1]):
        between = text[b.end : group[0].start]
        if PARAGRAPH in between or not (_JOINER.fullmatch(between) or _and_clause(between)):
            break
        group.insert(0, b)
    contents: list[str] = []
    for b in group:
        if b.content not in contents:
            contents.append(b.content)
    return contents


def join_answers(parts: list[str], reference: str = "") -> str:
    """Several boxed parts as one answer, shaped like the reference (set, tuple or list)."""
    if len(parts) == 1:
        return parts[0]
    ref = reference.strip().strip("$").strip()
    body = ", ".join(parts)
    if ref.startswith("\\{") or ref.startswith("\\left\\{"):
        return "\\{" + body + "\\}"
    if ref.startswith("(") and ref.endswith(")") and "," in ref:
        return "(" + body + ")"
    return body


_FINAL_SENTENCE = re.compile(r"final\s+answer\s*(?:\*\*)?\s*(?:is|:|=)?\s*(?:\*\*)?\s*:?\s*", re.IGNORECASE)
_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


def sentence_after(text: str, start: int) -> str | None:
    """The sentence that starts at ``start``: up to a line break or a sentence-final period
    (not a decimal point); its math if it holds ``$...$``; None if it is empty."""
    rest = text[start:]
    math = _MATH.match(rest.lstrip())
    if math:
        return next(g for g in math.groups() if g is not None).strip().rstrip(".").strip() or None
    end = re.search(r"\n|\.(?!\d)(?=\s|$)|$", rest)
    sentence = rest[: end.start()].strip().strip("*").strip()
    inner = _MATH.search(sentence)
    if inner:
        sentence = next(g for g in inner.groups() if g is not None)
    sentence = sentence.strip().rstrip(".").strip()
    return sentence or None


def final_answer_sentence(text: str) -> str | None:
    """The answer stated in the last "final answer is ..." sentence, or None."""
    found = list(_FINAL_SENTENCE.finditer(text))
    for m in reversed(found):
        sentence = sentence_after(text, m.end())
        if sentence:
            return sentence
    return None


def extract_final_answer(text: str, reference: str = "") -> Extracted:
    """Rules 1-2 of this module's docstring, in order."""
    parts = final_boxes(text)
    last_box = boxes(text)[-1].end if parts else -1
    later = [m for m in _FINAL_SENTENCE.finditer(text) if m.start() >= last_box]
    if later and (sentence := final_answer_sentence(text[last_box:] if parts else text)):
        return Extracted(sentence, "final_answer_sentence")  # a "final answer" stated after the boxes wins
    if parts:
        return Extracted(join_answers(parts, reference), "boxed" if len(parts) == 1 else "boxes")
    return NOTHING


# What may follow the final box in its step: punctuation, math delimiters, markdown, or a
# short remark with no digits or math in it ("I hope it is correct.", "dollars.").
_CLOSING = re.compile(r"[\s$.,;:!?)\]}*]*(?:\\\]|\\\))?[\s$.,;:!?)\]}*]*")
_REMARK = re.compile(r"[^\d$\\=+*/^<>{}]{0,80}")


def ends_with_final_answer(step: str) -> bool:
    """The stop rule of the math tasks: does this step state the solution's final answer?"""
    found = boxes(step)
    if found:
        tail = step[found[-1].end :]
        tail = tail[_CLOSING.match(tail).end() :]
        return _REMARK.fullmatch(tail.strip()) is not None
    found_sentence = list(_FINAL_SENTENCE.finditer(step))
    return bool(found_sentence) and final_answer_sentence(step) is not None


def contains_box(step: str) -> bool:
    """The toy task's stop rule: the step holds ``\\boxed{`` (its answer is one box at the end)."""
    return "\\boxed{" in step
