"""GSM8K: the number a final answer states, parsed from the whole boxed expression.

:func:`parse_number` reads ``\\boxed{18 \\text{ m}^2}`` as 18, ``36/2`` as 18,
``1.45\\times10^6`` as 1450000, ``\\$1,234.50`` as 1234.5, ``2\\frac{1}{2}`` (a mixed
number) as 5/2, ``50\\%`` / ``50 percent`` as 50 (GSM8K states percentages as the number),
``x = 18`` and ``3 \\times 6 = 18`` as 18 (the value after the last ``=``). An answer with
a second number that is not part of one expression (``18 or 20``, ``2 hours 30 minutes``)
states no single number: None, graded wrong, never a guess.

Extraction (after :func:`gsi.grading.extract.extract_final_answer`'s box and "final
answer" rules): ``answer_sentence`` (the last "the answer is ..."), ``hashes`` (a
GSM8K-style ``#### 72`` line), ``last_number`` (the last number in the text).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

from gsi.grading.extract import NOTHING, Extracted, extract_final_answer, sentence_after
from gsi.types import Problem

_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}|\\[dt]?frac(\d)(\d)")
_SPACES = ("\\!", "\\,", "\\;", "\\:", "\\ ", "~", "\\quad", "\\qquad", "\\left", "\\right")
_UNIT_POWER = re.compile(r"(?<=[A-Za-z²³])\s*\*\*\s*\(?\d+\)?|[²³]")
_PERCENT = re.compile(r"\\?%|\bper\s?cent\b|\bpct\b", re.IGNORECASE)
_CURRENCY = re.compile(r"\\\$|\$|€|£|¥|\bUSD\b|\bEUR\b")
_EXPR = re.compile(r"[-+(]*\s*(?:\d|\.\d)[\d.\s+\-*/()]*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MAX_EXPONENT = 400


def _plain(text: str) -> str:
    s = text.replace("\u2212", "-").replace("\u2013", "-").replace("{,}", ",")
    for space in _SPACES:
        s = s.replace(space, " ")
    for _ in range(3):
        s = _TEXT.sub(r" \1 ", s)
    s = _CURRENCY.sub(" ", s)
    s = _PERCENT.sub(" ", s)
    s = re.sub(r"\^\s*\{?\\circ\}?|°", " ", s)
    for _ in range(3):
        s = _FRAC.sub(lambda m: f"(({m[1] or m[3]})/({m[2] or m[4]}))", s)
    s = re.sub(r"(\d)\s*\(\((\d+)\)/\((\d+)\)\)", r"(\1+(\2)/(\3))", s)  # mixed number 2\frac12
    s = s.replace("\\times", "*").replace("\\cdot", "*").replace("×", "*").replace("\\div", "/").replace("÷", "/")
    s = re.sub(r"\^\s*\{([^{}]*)\}", r"**(\1)", s).replace("^", "**")
    s = re.sub(r"(?<=\d)\s*[eE]\s*([+-]?\d+)\b", r"*10**(\1)", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators
    s = re.sub(r"(?<=\d) (?=\d{3}(?![\d.]))", "", s)
    s = s.replace("{", " ").replace("}", " ").replace("\\", " ")
    return s


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow) and b.denominator == 1 and abs(b) <= _MAX_EXPONENT:
            return a ** int(b)
    raise ValueError("not an arithmetic expression")


def parse_number(text: str) -> Fraction | None:
    """The one number a short answer states (see the module docstring), exactly; or None."""
    s = _plain(text)
    for sep in ("=", "≈", "\\approx"):
        s = s.rsplit(sep, 1)[-1]
    s = s.strip().rstrip(".").strip()
    m = _EXPR.search(s)
    if m is None:
        return None
    expr = m.group().strip()
    rest = (s[: m.start()] + " " + s[m.end() :]).strip()
    rest = _UNIT_POWER.sub("", rest)
    if re.search(r"\d", rest) or re.search(r"[A-Za-z]\s*$", s[: m.start()].strip()):
        return None  # another number, or a word before it: not one stated number
    expr = re.sub(r"(?<=\d)\s+(?=\d)", "", expr.rstrip("+-*/ ("))
    expr = re.sub(r"(?<=[\d)])\s*\(", "*(", expr)
    try:
        return _value(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


_ANSWER_SENTENCE = re.compile(r"\b(?:the\s+)?answer\s*(?:is|:|=)\s*(?:\*\*)?\s*", re.IGNORECASE)
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)


def extract_number_answer(text: str) -> Extracted:
    """Boxes, "final answer", then "the answer is", ``####`` and the last number."""
    found = extract_final_answer(text)
    if found.answer is not None:
        return found
    stated = [sentence_after(text, m.end()) for m in _ANSWER_SENTENCE.finditer(text)]
    stated = [s for s in stated if s and parse_number(s) is not None]
    if stated:
        return Extracted(stated[-1], "answer_sentence")
    hashes = _HASHES.findall(text)
    if hashes:
        return Extracted(hashes[-1], "hashes")
    numbers = _NUMBER.findall(text.replace("\u2212", "-"))
    return Extracted(numbers[-1], "last_number") if numbers else NOTHING


def numbers_equal(answer: str, reference: str) -> bool:
    got, ref = parse_number(answer), parse_number(reference)
    return got is not None and ref is not None and got == ref


def grade_number(extracted: Extracted, problem: Problem) -> bool:
    return extracted.answer is not None and numbers_equal(extracted.answer, problem.answer)
