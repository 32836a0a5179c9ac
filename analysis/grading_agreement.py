"""``python -m analysis.grading_agreement PATH [--grader math_verify] [--show 20]``: how often our
grader agrees with the labels of the upstream Math-Verify test suite.

PATH is a checkout of https://github.com/huggingface/Math-Verify. Its test files are read
(never imported or run): every ``@pytest.mark.parametrize`` table with exactly the columns
``gold, pred, expected`` and literal rows. Two suites are graded through ``get_grader`` on
the whole prediction text, as the pipeline grades a solution:

- ``boxed``: the predictions that hold a ``\\boxed{}`` themselves;
- ``boxed_by_us``: the other predictions that are one math span (``$...$``) or bare math,
  put in a box (the shape our prompts ask for).

The reference is the gold's final answer (its boxes, else the gold without ``$``).
Prints agreement per suite, throughput (answers/s) and the disagreements.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import time
from pathlib import Path

from gsi.grading import get_grader
from gsi.grading.extract import extract_final_answer
from gsi.grading.helper import HelperPool
from gsi.grading.pool import GradingQueue
from gsi.types import Problem


def cases(checkout: Path) -> list[dict]:
    """The literal (gold, pred, expected) rows of the checkout's tests/test_*.py."""
    out = []
    for path in sorted((checkout / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize"):
                continue
            try:
                names, rows = ast.literal_eval(node.args[0]), ast.literal_eval(node.args[1])
            except (ValueError, SyntaxError, IndexError):
                continue
            names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
            if sorted(names) != ["expected", "gold", "pred"]:
                continue
            for row in rows:
                case = dict(zip(names, row))
                out.append({**case, "file": path.name, "expected": bool(case["expected"])})
    return out


def as_solution(pred: str) -> tuple[str, str] | None:
    """(suite, solution text) for a prediction, or None if it is prose without a box."""
    if "\\boxed" in pred:
        return "boxed", pred
    m = re.fullmatch(r"\s*\$+([^$]+)\$+\s*", pred)
    if m:
        return "boxed_by_us", f"The answer is $\\boxed{{{m.group(1).strip()}}}$."
    if "$" not in pred and not re.search(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", pred)):
        return "boxed_by_us", f"The answer is $\\boxed{{{pred.strip()}}}$."
    return None


def reference_of(gold: str) -> str:
    found = extract_final_answer(gold)
    return found.answer if found.answer is not None else gold.strip().strip("$").strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="a checkout of huggingface/Math-Verify")
    ap.add_argument("--grader", default="math_verify")
    ap.add_argument("--show", type=int, default=20, help="disagreements to print")
    ap.add_argument("--workers", type=int, default=1,
                    help="grade through the loop's grading pool with this many helpers at once")
    args = ap.parse_args(argv)
    if not (args.checkout / "tests").is_dir():
        print(f"{args.checkout} has no tests/ folder: give a checkout of huggingface/Math-Verify", file=sys.stderr)
        return 2
    grader = get_grader(args.grader)
    if args.workers > 1 and hasattr(grader, "pool"):
        grader.pool = HelperPool(grader.pool.kinds, args.workers, grader.pool.timeout_s)
        grader.workers = args.workers
    tally: dict[str, list[int]] = {}
    wrong: list[str] = []
    graded, start = 0, time.perf_counter()
    queue: GradingQueue = GradingQueue(grader, args.workers)
    try:
        for case in cases(args.checkout):
            shaped = as_solution(case["pred"])
            if shaped is not None:
                queue.submit(shaped[1], Problem("case", "", reference_of(case["gold"])),
                             lambda grade, case=case, suite=shaped[0]: (case, suite, grade))
        for case, suite, grade in queue.ready(wait=True):
            graded += 1
            agree = grade.correct is case["expected"]
            tally.setdefault(suite, [0, 0])[agree] += 1
            false_positive = grade.correct and not case["expected"]
            if not agree:
                wrong.append(f"  [{suite}{' FALSE POSITIVE' if false_positive else ''}] {case['file']}: gold "
                             f"{case['gold'][:60]!r} pred {case['pred'][:60]!r} -> read {grade.answer!r}, "
                             f"expected {case['expected']}")
    finally:
        elapsed = time.perf_counter() - start
        queue.close()
        grader.close()
    print(f"grader={args.grader} on {args.checkout}")
    print("| suite | cases | agree | rate |\n|---|---|---|---|")
    for suite, (bad, good) in sorted(tally.items()):
        print(f"| {suite} | {bad + good} | {good} | {100 * good / (bad + good):.1f} % |")
    print(f"throughput: {graded / elapsed:.1f} answers/s ({graded} in {elapsed:.1f} s, "
          f"{args.workers} at a time)")
    print(f"disagreements ({len(wrong)}):")
    print("\n".join(wrong[: args.show]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
