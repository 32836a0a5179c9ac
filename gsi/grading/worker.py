"""The grading helper process of :class:`gsi.grading.helper.HelperPool`.

Reads one JSON request per line on stdin (``{"kind": "math_verify" | "prm800k",
"gold": ..., "pred": ..., "complex": bool}``), answers ``1`` or ``0`` per line on stdout.
math-verify's SIGALRM limits are off here: the parent enforces the time limit by killing
this process. Exits when stdin closes.
"""

from __future__ import annotations

import json
import logging
import sys


def _as_complex(parsed: list) -> list:
    """math-verify keeps ``i`` a real symbol; in a problem about complex numbers it is sqrt(-1)."""
    import sympy

    out = []
    for item in parsed:
        if isinstance(item, sympy.Basic):
            item = item.subs({s: sympy.I for s in item.free_symbols if getattr(s, "name", "") == "i"})
        out.append(item)
    return out


def math_verify_equal(gold: str, pred: str, complex_numbers: bool = False) -> bool:
    from math_verify import parse, verify

    parsed_gold = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    parsed_pred = parse("\\boxed{" + pred + "}", parsing_timeout=None)
    if not parsed_gold or not parsed_pred:
        return False
    if complex_numbers:
        parsed_gold, parsed_pred = _as_complex(parsed_gold), _as_complex(parsed_pred)
    return bool(verify(parsed_gold, parsed_pred, timeout_seconds=None))


def prm800k_equal(gold: str, pred: str) -> bool:
    from mathruler.grader import grade_answer

    return bool(grade_answer(pred, gold))


def answer(request: dict) -> bool:
    if request.get("kind", "math_verify") == "prm800k":
        return prm800k_equal(request["gold"], request["pred"])
    return math_verify_equal(request["gold"], request["pred"], bool(request.get("complex")))


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own limits are off
    kinds = sys.argv[1:] or ["math_verify"]
    if "math_verify" in kinds:
        import math_verify  # noqa: F401 - import before "ready" so the first request is not slow
    if "prm800k" in kinds:
        import mathruler.grader  # noqa: F401

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            ok = answer(json.loads(line))
        except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
            ok = False
        out.write("1\n" if ok else "0\n")
        out.flush()


if __name__ == "__main__":
    main()
