"""Answer extraction rules, the data sets' stop rules, the grading pool, and two graders'
accuracies side by side through the real pipeline and report."""

from __future__ import annotations

import json
import threading

import pytest

from gsi.grading import Grade, get_grader
from gsi.grading.extract import ends_with_final_answer, extract_final_answer
from gsi.grading.pool import GradingQueue
from gsi.pipeline import run
from gsi.types import Problem

SMALL_RUN = ("limit=6", "n_small=2", "n_big=2", "batch_size=3", "max_steps=6")


@pytest.mark.parametrize(("text", "reference", "answer", "rule"), [
    ("so $\\boxed{2}$ and $\\boxed{5}$.", "", "2, 5", "boxes"),
    ("so $\\boxed{2}$ and $\\boxed{5}$.", "\\{2,5\\}", "\\{2, 5\\}", "boxes"),
    ("so $\\boxed{2}$ and $\\boxed{5}$.", "(2,5)", "(2, 5)", "boxes"),
    ("$\\boxed{7}$ first.\n\nThen $\\boxed{8}$.", "", "8", "boxed"),
    ("$\\boxed{8}$, so $\\boxed{8}$.", "", "8", "boxed"),
    ("\\boxed{\\frac{1}{2}}", "", "\\frac{1}{2}", "boxed"),
    ("\\boxed 5", "", "5", "boxed"),
    ("The final answer is $\\frac{1}{2}$. I hope it is correct.", "", "\\frac{1}{2}", "final_answer_sentence"),
    ("Final Answer: 3.5 meters\nmore text", "", "3.5 meters", "final_answer_sentence"),
    ("The final answer is 12.", "", "12", "final_answer_sentence"),
    ("The answer is 12.", "", None, None),
    ("\\boxed{12", "", None, None),
])
def test_math_extraction_rules(text, reference, answer, rule):
    found = extract_final_answer(text, reference)
    assert (found.answer, found.rule) == (answer, rule)


@pytest.mark.parametrize(("step", "ends"), [
    ("Thus $\\boxed{5}$.", True),
    ("\\boxed{5}. I hope it is correct.", True),
    ("The answer is $\\boxed{18}$ dollars.\n\n", True),
    ("**Final Answer**\n\\[\\boxed{12}\\]", True),
    ("The final answer is 7.", True),
    ("For $x=2$ we get $\\boxed{2}$; the other factor gives $x - 5 = 0$, so", False),  # goes on
    ("\\boxed{1", False),  # an unclosed box (cut at max_tokens)
    ("We compute $3+4=7$.", False),
])
def test_math_stop_rule_ends_at_the_final_answer(step, ends):
    assert ends_with_final_answer(step) is ends
    assert get_grader("gsm8k").ends_solution(step) is ends


def test_toy_stop_rule_is_the_toy_tasks_box():
    toy = get_grader("exact_number")
    assert toy.ends_solution("\\boxed{12}") and toy.ends_solution("\\boxed{1")
    assert not toy.ends_solution("3+5=8\n\n")


def test_grader_results_record_the_rule():
    grade = get_grader("gsm8k")("48 + 24 = 72\n#### 72", Problem("p", "q", "72"))
    assert (grade.answer, grade.rule, grade.correct) == ("72", "hashes", True)


def test_combined_grader_records_the_others_verdict():
    pytest.importorskip("mathruler")
    grader = get_grader("gsm8k+prm800k")
    try:
        grade = grader("\\boxed{\\frac{2}{4}}", Problem("p", "q", "\\frac{1}{2}"))  # unreduced: wrong for PRM800K
        assert grade.correct and grade.also == {"prm800k": False}
    finally:
        grader.close()


def test_grading_queue_hands_results_back_in_order_while_grading_in_parallel():
    release = threading.Event()
    running = []

    def slow_grader(text: str, problem: Problem) -> Grade:
        running.append(text)
        if text == "first":
            release.wait(30)
        return Grade(text, True)

    queue = GradingQueue(slow_grader, workers=2)
    try:
        queue.submit("first", Problem("a", "", "1"), lambda g: g.answer)
        queue.submit("second", Problem("b", "", "1"), lambda g: g.answer)
        while len(running) < 2:  # both graded at once: the second does not wait for the first
            threading.Event().wait(0.01)
        assert queue.ready() == []  # the first is not graded yet, so nothing is handed back
        release.set()
        assert queue.ready(wait=True) == ["first", "second"]
    finally:
        queue.close()


def test_two_graders_side_by_side_in_results_metrics_and_report(compose, tmp_path):
    from analysis.report import build_report

    metrics = run(compose("method=gsi", "dataset.grader=exact_number+gsm8k", *SMALL_RUN), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert all(set(r["correct_by"]) == {"gsm8k"} for r in rows)
    assert all(r["answer_rule"] in ("last_box", None) for r in rows)
    # the toy answers are plain boxed numbers: both graders agree
    assert metrics["accuracy_gsm8k"] == metrics["accuracy"]
    report = build_report([tmp_path / "run"], tmp_path / "report")
    assert report["rows"][0]["accuracy_gsm8k"] == metrics["accuracy"]
    assert "accuracy_gsm8k" in (tmp_path / "report" / "report.md").read_text()
    assert "accuracy_gsm8k" in (tmp_path / "report" / "results.csv").read_text().splitlines()[0]


def test_unknown_or_repeated_grader_in_a_combination_is_a_config_error():
    from gsi.config import ConfigError

    with pytest.raises(ConfigError, match=r"dataset.grader='nope' is not a grader"):
        get_grader("math_verify+nope")
    with pytest.raises(ConfigError, match=r"each once"):
        get_grader("gsm8k+gsm8k")
