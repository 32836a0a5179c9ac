"""The grading table (tests/grading_table.py): every row asserted, no false positives,
through ``get_grader`` on the whole solution text, as the pipeline grades."""

from __future__ import annotations

import pytest

from gsi.grading import get_grader
from gsi.types import Problem
from tests.grading_table import GSM8K, MATH, MC_QUESTION, MULTIPLE_CHOICE, PRM800K

ALL = {"math_verify": MATH, "gsm8k": GSM8K, "multiple_choice": MULTIPLE_CHOICE, "prm800k": PRM800K}
ROWS = [(grader, *row) for grader, rows in ALL.items() for row in rows]


@pytest.fixture(scope="module")
def graders():
    pytest.importorskip("math_verify")
    pytest.importorskip("mathruler")
    made = {name: get_grader(name) for name in ALL}
    yield made
    for g in made.values():
        g.close()


def _problem(grader: str, row: tuple) -> Problem:
    text, reference, _expected, *question = row
    q = MC_QUESTION if grader == "multiple_choice" else (question[0] if question else "Solve the problem.")
    return Problem(id="p", prompt=q, answer=reference, question=q)


def _id(row: tuple) -> str:
    return f"{row[0]}:{row[2][:20]}:{row[1][-40:]}"


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_grading_table(graders, row):
    grader, text, _reference, expected, *_ = row
    grade = graders[grader](text, _problem(grader, row[1:]))
    assert grade.correct is expected, f"read {grade.answer!r} by rule {grade.rule}"


def test_table_is_large_two_sided_and_covers_every_grader():
    assert len(ROWS) >= 250
    not_equal = sum(1 for r in ROWS if r[3] is False)
    assert not_equal >= len(ROWS) / 3
    for rows in ALL.values():
        assert {r[2] for r in rows} == {True, False}
