"""Benchmarks through `datasets`: each conf/dataset config on a local copy in the hub's format,
and bad data (missing file, empty set, no reference, non-UTF-8 bytes)."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip("datasets")

from hydra.utils import instantiate  # noqa: E402

from gsi.errors import ConfigError  # noqa: E402
from gsi.data.hub import HubDataset  # noqa: E402
from tests.dataset_fixtures import EXPECTED, GSM8K, MATH500, write_fixtures, write_jsonl  # noqa: E402

BENCHMARKS = sorted(EXPECTED)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return write_fixtures(tmp_path_factory.mktemp("benchmarks"))


@pytest.fixture
def load(compose, tmp_path):
    """``load("gsm8k", path)`` -> the problems of conf/dataset/gsm8k.yaml read from ``path``."""

    def _load(name, path, *overrides):
        cfg = compose(f"dataset={name}", f"dataset.local_path={path}", f"dataset.cache_dir={tmp_path / 'cache'}",
                      *overrides)
        return instantiate(cfg.dataset).load()

    return _load


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_config_loads_its_hub_shaped_copy(load, fixtures, name):
    problems = load(name, fixtures[name])
    assert [(p.id, p.answer) for p in problems] == EXPECTED[name]
    for p in problems:
        assert p.prompt == p.question and p.prompt.strip()


def test_problem_text_is_the_question_column(load, fixtures):
    problems = load("gsm8k", fixtures["gsm8k"])
    assert [p.question for p in problems] == [row["question"] for row in GSM8K]


def test_mmlu_problem_lists_lettered_options(load, fixtures):
    first = load("mmlu_stem", fixtures["mmlu_stem"])[0]
    assert first.question == (
        "Find the degree for the given field extension Q(sqrt(2)) over Q.\nA. 0\nB. 2\nC. 1\nD. 3"
    )


def test_folder_of_files_is_read_in_name_order(load, tmp_path):
    folder = tmp_path / "math500"
    write_jsonl(folder / "part-1.jsonl", MATH500[3:])
    write_jsonl(folder / "part-0.jsonl", MATH500[:3])
    problems = load("math500", folder)
    assert [p.id for p in problems] == [row["unique_id"] for row in MATH500]


def test_each_config_names_the_real_hub_data_set(compose):
    hub = {name: (compose(f"dataset={name}").dataset.path, compose(f"dataset={name}").dataset.subset)
           for name in BENCHMARKS}
    assert hub == {
        "gsm8k": ("openai/gsm8k", "main"),
        "math500": ("HuggingFaceH4/MATH-500", None),
        "minerva_math": ("math-ai/minervamath", None),
        "mmlu_stem": ("TIGER-Lab/MMLU-STEM", None),
        "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP"),
    }


def test_unknown_dataset_key_fails_at_composition(compose):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="lokal_path"):
        compose("dataset=math500", "dataset.lokal_path=/x")


# ------------------------------------------------------------------ bad data
def test_missing_local_file_is_a_config_error_naming_the_key(load, tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset\.local_path='.*nope\.jsonl' does not exist: point it at"):
        load("math500", tmp_path / "nope.jsonl")


def test_wrong_column_is_a_config_error_listing_the_columns(load, fixtures):
    with pytest.raises(ConfigError, match=r"dataset\.fields\.problem='question' is not a column .* problem, solution"):
        load("math500", fixtures["math500"], "dataset.fields.problem=question")


def test_empty_data_set_warns_and_has_no_problems(load, tmp_path, caplog):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with caplog.at_level(logging.WARNING, logger="gsi.data.hub"):
        assert load("math500", empty) == []
    assert "is empty" in caplog.text


def test_rows_without_reference_are_kept_with_an_empty_answer(load, tmp_path, caplog):
    rows = [MATH500[0], {**MATH500[1], "answer": ""}, {**MATH500[2], "answer": None}]
    with caplog.at_level(logging.WARNING, logger="gsi.data.hub"):
        problems = load("math500", write_jsonl(tmp_path / "m.jsonl", rows))
    assert [p.answer for p in problems] == ["\\frac{14}{3}", "", ""]
    assert "2 of 3 problems have no reference answer" in caplog.text


def test_gsm8k_answer_without_hashes_has_no_reference(load, tmp_path):
    rows = [GSM8K[0], {"question": "q", "answer": "a solution with no final line"}]
    assert [p.answer for p in load("gsm8k", write_jsonl(tmp_path / "g.jsonl", rows))] == ["72", ""]


def _with_bad_byte(tmp_path):
    good = json.dumps(MATH500[0]) + "\n"
    data = good.encode() + b'{"problem": "caf\xe9", "answer": "1", "solution": "", "subject": "",' \
                           b' "level": 1, "unique_id": "x"}\n'
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(data)
    return path, len(good.encode()) + len(b'{"problem": "caf')


def test_non_utf8_is_one_line_naming_file_and_byte_offset(load, tmp_path):
    path, offset = _with_bad_byte(tmp_path)
    with pytest.raises(ConfigError) as err:
        load("math500", path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: byte {offset} (0xe9) is not UTF-8: re-encode the file as UTF-8")


def test_non_utf8_replace_mode_reads_u_fffd_and_warns(load, tmp_path, caplog):
    path, offset = _with_bad_byte(tmp_path)
    with caplog.at_level(logging.WARNING, logger="gsi.data.hub"):
        problems = load("math500", path, "dataset.on_bad_bytes=replace")
    assert [p.question for p in problems][1] == "caf\ufffd"
    assert f"byte {offset} (0xe9) is not UTF-8" in caplog.text


def test_bad_option_values_are_config_errors():
    with pytest.raises(ConfigError, match="dataset.answer_format='hashes' is not allowed"):
        HubDataset(name="x", path="x", answer_format="hashes")
    with pytest.raises(ConfigError, match="dataset.on_bad_bytes='skip' is not allowed"):
        HubDataset(name="x", path="x", on_bad_bytes="skip")


def test_hub_unreachable_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True, raising=False)
    data = HubDataset(name="math500", path="HuggingFaceH4/MATH-500", cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^could not load HuggingFaceH4/MATH-500 split test from the hub") as err:
        data.load()
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ through the pipeline
def _run(compose, tmp_path, *overrides):
    from gsi.pipeline import run

    cfg = compose("tracking=none", "method=soft_bon_small", "n_small=2", "max_steps=2",
                  f"dataset.cache_dir={tmp_path / 'cache'}", *overrides)
    out = tmp_path / "run"
    try:
        metrics = run(cfg, out)
    except SystemExit as exc:  # every problem errored (the toy verifier cannot read GSM8K text): exit 1 (#15)
        if exc.code != 1:
            raise
        metrics = json.loads((out / "metrics.json").read_text())
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return metrics, rows


def test_pipeline_on_gsm8k_copy_writes_one_row_per_problem(compose, tmp_path, fixtures):
    metrics, rows = _run(compose, tmp_path, "dataset=gsm8k", f"dataset.local_path={fixtures['gsm8k']}", "limit=3")
    assert sorted(r["problem_id"] for r in rows) == ["gsm8k-00000", "gsm8k-00001", "gsm8k-00002"]
    assert [r["reference"] for r in sorted(rows, key=lambda r: r["problem_id"])] == ["72", "1,890", "-3"]
    assert metrics["num_problems"] == 3


def test_pipeline_records_a_problem_without_reference_as_an_error(compose, tmp_path):
    data = write_jsonl(tmp_path / "g.jsonl", [GSM8K[0], {"question": "q", "answer": "no final line"}])
    metrics, rows = _run(compose, tmp_path, "dataset=gsm8k", f"dataset.local_path={data}")
    by_id = {r["problem_id"]: r for r in rows}
    assert by_id["gsm8k-00001"]["stop_reason"] == "error"
    assert by_id["gsm8k-00001"]["error"] == "no reference answer in the data set"
    assert by_id["gsm8k-00001"]["steps"] == 0
    assert by_id["gsm8k-00000"]["reference"] == "72"
    assert metrics["num_problems"] == 2 and metrics["num_errors"] >= 1


def test_pipeline_on_empty_data_set_writes_zero_metrics(compose, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    metrics, rows = _run(compose, tmp_path, "dataset=math500", f"dataset.local_path={empty}")
    assert rows == [] and metrics["num_problems"] == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_problems"] == 0


def test_pipeline_missing_local_file_exits_2_with_one_line(compose, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _run(compose, tmp_path, "dataset=math500", f"dataset.local_path={tmp_path / 'missing.jsonl'}")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsi: config error: dataset.local_path=")
