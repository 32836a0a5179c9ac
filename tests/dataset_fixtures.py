"""Small copies of the five benchmarks, written by the tests in the hub's own file formats.

Each table has exactly the hub data set's columns and value formats (MATH-500 and
Minerva Math are jsonl on the hub, GSM8K, OlympiadBench and MMLU-STEM parquet), a
handful of rows with awkward answers. ``EXPECTED`` is what :class:`gsi.data.hub.HubDataset`
must make of them: (problem id, reference answer) in file order.
"""

from __future__ import annotations

import json
from pathlib import Path

MATH500 = [
    {"problem": "Compute $\\dfrac{7}{3} \\cdot 2$.", "solution": "... $\\boxed{\\frac{14}{3}}$.",
     "answer": "\\frac{14}{3}", "subject": "Prealgebra", "level": 2, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Solve $x^2 - x - 6 \\ge 0$.", "solution": "... $\\boxed{(-\\infty,-2] \\cup [3,\\infty)}$",
     "answer": "(-\\infty,-2] \\cup [3,\\infty)", "subject": "Algebra", "level": 4,
     "unique_id": "test/algebra/2.json"},
    {"problem": "A shirt costs \\$21 after a 10\\% discount. What was the price?", "solution": "...",
     "answer": "\\$23.33", "subject": "Prealgebra", "level": 3, "unique_id": "test/prealgebra/3.json"},
    {"problem": "Which day of the week is 40 days after a Tuesday?", "solution": "...",
     "answer": "\\text{Sunday}", "subject": "Number Theory", "level": 2, "unique_id": "test/number_theory/4.json"},
    {"problem": "Which of the graphs (A)-(E) is $y=f(-x)$?", "solution": "...",
     "answer": "\\text{(C)}", "subject": "Intermediate Algebra", "level": 1,
     "unique_id": "test/intermediate_algebra/5.json"},
]

GSM8K = [
    {"question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in total?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn total 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "A ticket costs $18.90. How much do 100 tickets cost?",
     "answer": "100 * 18.90 = <<100*18.90=1890>>1890\n#### 1,890"},
    {"question": "The temperature was 5 degrees and fell by 8. What is it now?",
     "answer": "5 - 8 = <<5-8=-3>>-3\n#### -3"},
    {"question": "Weng earns $12 an hour. How much for 50 minutes?",
     "answer": "12/60 = $<<12/60=0.2>>0.2 per minute.\n50 * 0.2 = $<<50*0.2=10>>10.\n#### 10"},
]

_OLY_COMMON = {
    "subfield": "Algebra", "context": None, "is_multiple_answer": False, "unit": None, "error": None,
    "question_type": "Open-ended", "subject": "Math", "language": "English", "modality": "Text-only",
    "difficulty": "Competition", "image_1": None, "image_2": None, "image_3": None, "image_4": None,
    "image_5": None,
}
OLYMPIADBENCH = [
    {**_OLY_COMMON, "id": 1606, "question": "Find the least positive $x$ with $\\sin x = \\frac12$.",
     "solution": ["The sine is $\\frac12$ at $\\frac{\\pi}{6}$."], "final_answer": ["$\\frac{\\pi}{6}$"],
     "answer_type": "Numerical"},
    {**_OLY_COMMON, "id": 1700, "question": "Find all real $x$ with $x^2 < 4$.",
     "solution": ["..."], "final_answer": ["$(-2,2)$"], "answer_type": "Interval"},
    {**_OLY_COMMON, "id": 2001, "question": "Find all pairs $(a, b)$ of positive integers with $ab = 2$.",
     "solution": ["..."], "final_answer": ["$(1,2),(2,1)$"], "is_multiple_answer": True,
     "answer_type": "Tuple"},
    {**_OLY_COMMON, "id": 2500, "question": "A rod of length 3 is cut in half. How long is each part?",
     "solution": ["..."], "final_answer": ["1.5"], "unit": "cm", "answer_type": "Numerical"},
]

MINERVA = [
    {"question": "Each of the two Magellan telescopes has a diameter of $6.5 \\mathrm{~m}$. Compute the "
                 "collecting area of one in $\\mathrm{m}^{2}$.", "answer": "33.2"},
    {"question": "Preamble: a wave has speed $v$ and frequency $\\nu$. Give its wavelength.",
     "answer": "\\frac{v}{\\nu}"},
    {"question": "What is the energy of a photon of wavelength 500 nm, in eV?", "answer": "2.48"},
    {"question": "Give the Planck constant in SI units, to two significant figures.", "answer": "6.6e-34"},
]

MMLU_STEM = [
    {"question": "Find the degree for the given field extension Q(sqrt(2)) over Q.",
     "choices": ["0", "2", "1", "3"], "subject": "abstract_algebra", "answer": 1},
    {"question": "Which of these is a prime number?", "choices": ["21", "27", "29", "33"],
     "subject": "elementary_mathematics", "answer": 2},
    {"question": "The SI unit of force is", "choices": ["newton", "joule", "watt", "pascal"],
     "subject": "conceptual_physics", "answer": 0},
]

EXPECTED = {
    "math500": [("test/prealgebra/1.json", "\\frac{14}{3}"), ("test/algebra/2.json", "(-\\infty,-2] \\cup [3,\\infty)"),
                ("test/prealgebra/3.json", "\\$23.33"), ("test/number_theory/4.json", "\\text{Sunday}"),
                ("test/intermediate_algebra/5.json", "\\text{(C)}")],
    "gsm8k": [("gsm8k-00000", "72"), ("gsm8k-00001", "1,890"), ("gsm8k-00002", "-3"), ("gsm8k-00003", "10")],
    "olympiadbench": [("1606", "\\frac{\\pi}{6}"), ("1700", "(-2,2)"), ("2001", "(1,2),(2,1)"), ("2500", "1.5")],
    "minerva_math": [("minerva_math-00000", "33.2"), ("minerva_math-00001", "\\frac{v}{\\nu}"),
                     ("minerva_math-00002", "2.48"), ("minerva_math-00003", "6.6e-34")],
    "mmlu_stem": [("mmlu_stem-00000", "B"), ("mmlu_stem-00001", "C"), ("mmlu_stem-00002", "A")],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_fixtures(root: Path) -> dict[str, Path]:
    """The five benchmark copies under ``root``, by config name."""
    return {
        "math500": write_jsonl(root / "math500" / "test.jsonl", MATH500),
        "gsm8k": write_parquet(root / "gsm8k" / "test-00000-of-00001.parquet", GSM8K),
        "olympiadbench": write_parquet(root / "olympiadbench" / "train-00000-of-00001.parquet", OLYMPIADBENCH),
        "minerva_math": write_jsonl(root / "minerva_math" / "test.jsonl", MINERVA),
        "mmlu_stem": write_parquet(root / "mmlu_stem" / "test-00000-of-00001.parquet", MMLU_STEM),
    }
