"""The math-verify helper process of :class:`gsi.grading.MathVerifyGrader`.

Reads one JSON request per line on stdin (``{"gold": ..., "pred": ...}``), answers
``1`` or ``0`` per line on stdout. math-verify's SIGALRM limits are off here: the
parent enforces the time limit by killing this process. Exits when stdin closes.
"""

from __future__ import annotations

import json
import logging
import sys


def equivalent(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    parsed_gold = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    parsed_pred = parse("\\boxed{" + pred + "}", parsing_timeout=None)
    if not parsed_gold or not parsed_pred:
        return False
    return bool(verify(parsed_gold, parsed_pred, timeout_seconds=None))


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own limits are off
    import math_verify  # noqa: F401 - import before "ready" so the first request is not slow

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            ok = equivalent(request["gold"], request["pred"])
        except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
            ok = False
        out.write("1\n" if ok else "0\n")
        out.flush()


if __name__ == "__main__":
    main()
