"""Fault injection (#15), part two: output directories and files (what Hydra trips on, the
umask, torn and bad result lines, unreadable runs in the report), sweeps that check every
job first, interrupts, and one shard merge; part one is ``tests/test_trust.py``.

Most cases run the pipeline in this process on a copy of one finished toy run; the ones
that need Hydra, a launcher, a second process or a signal run ``run.py`` (marked ``e2e``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import gsi.pipeline
from gsi.pipeline import run
from tests.helpers import ROOT, assert_same_results
from tests.sweep_utils import run_py
from tests.trust_utils import ARGS, ENV, LONG, compose, last_line, one_line, refused, rows, unwritable


# ------------------------------------------------------------------ 5. what Hydra trips on
@pytest.mark.e2e
@pytest.mark.parametrize("case", ["file", "under_a_file", "unwritable", "no_space"])
def test_bad_output_directories_fail_before_hydra_writes(tmp_path, case, restore_writable):
    blocker = tmp_path / "blocker"
    target, preexec, word = tmp_path / "run", None, "not writable"
    if case == "file":
        blocker.write_text("keep me\n")
        target, word = blocker, "is a file"
    elif case == "under_a_file":
        blocker.write_text("keep me\n")
        target, word = blocker / "run", "which is a file"
    elif case == "unwritable":
        blocker.mkdir()
        target = blocker / "run"
        unwritable(blocker)
        restore_writable.append(blocker)
    else:
        import resource

        def preexec():  # writes fail with EFBIG, as on a full disk with ENOSPC
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

        word = "no space left"
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *ARGS, f"hydra.run.dir={target}"], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=preexec)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("gsi: config error: output directory") and word in line
    if case in ("file", "under_a_file"):
        assert blocker.read_text() == "keep me\n"
    if case in ("unwritable", "no_space"):
        assert not target.exists()


def test_a_library_run_into_a_file_is_refused(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me\n")
    line = refused(capsys, 2, where=blocker)
    assert "is a file" in line and blocker.read_text() == "keep me\n"


def test_a_read_only_results_file_is_found_before_models_load(capsys, run_dir, restore_writable):
    (run_dir / "metrics.json").unlink()
    before = rows(run_dir)
    unwritable(run_dir / "results.jsonl")
    restore_writable.append(run_dir / "results.jsonl")
    gsi.pipeline._release(set())
    line = refused(capsys, 2, where=run_dir)
    assert "results.jsonl is not writable" in line and not gsi.pipeline._LOADED
    assert rows(run_dir) == before


@pytest.mark.e2e
def test_a_basic_sweep_with_a_bad_job_runs_no_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "beta=0.5,-1,2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "job #1" in proc.stderr and "beta=-1.0 is not allowed" in proc.stderr
    assert "nothing was submitted or run" in last_line(proc.stderr)
    assert not any(sweep.glob("*/results.jsonl"))


@pytest.mark.e2e
def test_a_basic_sweep_with_an_unwritable_job_dir_runs_no_job(tmp_path):
    from gsi.launch.identity import run_id

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / run_id(compose("beta=2"))).write_text("not a directory\n")
    proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "beta=0.5,2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "job #1" in proc.stderr and "is a file" in proc.stderr
    assert not any(sweep.glob("*/results.jsonl"))


@pytest.mark.e2e
def test_a_sweep_writing_two_configs_into_one_dir_runs_no_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=same", "beta=0.5,2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "job #1" in proc.stderr and "with another configuration (beta" in proc.stderr
    assert not (sweep / "same" / "results.jsonl").exists()


# ------------------------------------------------------------------ 6. outputs and bad lines
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_output_file_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run(compose(), tmp_path / "run")
    finally:
        os.umask(old)
    for name in ("config.yaml", "metrics.json", "results.jsonl"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.mark.parametrize("ending", ["", "\n"])
def test_a_torn_last_line_is_quarantined_and_the_run_resumes(run_dir, finished, ending):
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    (run_dir / "results.jsonl").write_text("".join(lines[:-1]) + torn + ending)
    (run_dir / "metrics.json").unlink()
    metrics = run(compose(), run_dir)
    assert metrics["num_problems"] == 6 and metrics["new_problems"] == 1
    assert_same_results(rows(run_dir), rows(finished))
    assert (run_dir / "results.jsonl.bad").read_text() == torn + "\n"
    run(compose(), run_dir)  # and the next resume is clean
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("bad, words", [
    ("{not json", "not a JSON line"),
    ('{"problem_id": "x", "correct": true}', "a result row without final_reward, steps"),
    ("[1, 2, 3]", "must be a JSON object"),
])
def test_a_bad_row_before_the_last_is_reported_with_its_line_number(capsys, run_dir, bad, words):
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    lines.insert(2, bad + "\n")
    (run_dir / "results.jsonl").write_text("".join(lines))
    before = (run_dir / "results.jsonl").read_bytes()
    line = refused(capsys, 2, where=run_dir)
    assert "results.jsonl:3:" in line and words in line and "fix or remove that line" in line
    assert (run_dir / "results.jsonl").read_bytes() == before


def test_a_valid_last_row_missing_fields_is_reported_not_dropped(capsys, run_dir):
    with (run_dir / "results.jsonl").open("a") as f:
        f.write('{"problem_id": "toy-x"}\n')
    before = (run_dir / "results.jsonl").read_bytes()
    line = refused(capsys, 2, where=run_dir)
    assert "results.jsonl:7: a result row without correct" in line
    assert (run_dir / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize("breakage", ["metrics", "results", "config"])
def test_the_report_lists_an_unreadable_run_and_reports_the_others(tmp_path, finished, breakage):
    from analysis.report import main as report_main

    sweep = tmp_path / "sweep"
    good, broken = sweep / "good", sweep / "broken"
    shutil.copytree(finished, good)
    shutil.copytree(finished, broken)
    if breakage == "metrics":
        (broken / "metrics.json").write_text("{torn")
    elif breakage == "results":
        lines = (broken / "results.jsonl").read_text().splitlines(keepends=True)
        (broken / "results.jsonl").write_text("".join([lines[0], "garbage\n", *lines[1:]]))
    else:
        (broken / "config.yaml").write_text("beta: [unclosed\n")
    before = (good / "results.jsonl").read_bytes()
    assert report_main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Failed or incomplete runs" in text and str(broken) in text
    assert "1 configuration(s)" in text
    assert (good / "results.jsonl").read_bytes() == before


# ------------------------------------------------------------------ 7. interrupts
@pytest.mark.e2e
@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_an_interrupt_ends_with_one_line_and_the_same_command_resumes_exactly(tmp_path, sig, code, name):
    ref, out = tmp_path / "ref", tmp_path / "run"
    run(compose("limit=24"), ref)
    # A shell starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN
    # (as `nohup run.py &` users want): give the run the default disposition a terminal gives.
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *LONG, f"hydra.run.dir={out}"], cwd=ROOT,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.jsonl").exists() and (out / "results.jsonl").read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted; make it longer"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    line = last_line(err)
    saved = len(rows(out))
    assert line == (f"gsi: interrupted ({name}): {saved} of 24 problems are saved in {out}; "
                    "run the same command again to resume")
    partial = rows(out)
    again = run_py(*LONG, f"hydra.run.dir={out}")
    assert again.returncode == 0, again.stderr
    resumed = rows(out)
    assert {k: resumed[k] for k in partial} == partial
    assert_same_results(resumed, rows(ref))


# ------------------------------------------------------------------ #14.5: one identity, one merge
def test_the_report_groups_beta_20_and_20_0_shards_as_one_configuration(tmp_path):
    from analysis.collect import collect

    sweep = tmp_path / "sweep"
    for index in (0, 1):
        run(compose("shard.count=2", f"shard.index={index}"), sweep / f"s{index}")
    text = (sweep / "s1" / "config.yaml").read_text()
    assert "beta: 20.0\n" in text
    (sweep / "s1" / "config.yaml").write_text(text.replace("beta: 20.0\n", "beta: 20\n"))
    configs, bad = collect([sweep])
    assert not bad and len(configs) == 1
    assert configs[0].complete and configs[0].metrics["num_problems"] == 6


def test_one_shard_merge_strict_refuses_what_tolerant_lists():
    from analysis.merge import MergeError, merge_rows
    from gsi.data import shard_of

    ids = [f"p{k}" for k in range(8)]
    part0 = [{"problem_id": p} for p in ids if shard_of(p, 3) == 0]
    part2 = [{"problem_id": p} for p in ids if shard_of(p, 3) == 2]
    rows_, missing = merge_rows([("a", 0, part0), ("c", 2, part2)], 3, strict=False)
    assert missing == [1] and len(rows_) == len(part0) + len(part2)
    with pytest.raises(MergeError, match=r"missing shard\(s\) \[1\]"):
        merge_rows([("a", 0, part0), ("c", 2, part2)], 3, strict=True)
    with pytest.raises(MergeError, match="belongs to shard"):
        merge_rows([("a", 0, part2), ("b", 1, []), ("c", 2, part0)], 3, strict=True)


def test_merging_a_shard_with_a_bad_row_refuses_with_its_line_number(tmp_path, capsys):
    from analysis.merge import main as merge_main

    sweep = tmp_path / "sweep"
    for index in (0, 1):
        run(compose("shard.count=2", f"shard.index={index}"), sweep / f"s{index}")
    lines = (sweep / "s1" / "results.jsonl").read_text().splitlines(keepends=True)
    (sweep / "s1" / "results.jsonl").write_text("".join([lines[0], "garbage\n", *lines[1:]]))
    capsys.readouterr()
    assert merge_main([str(sweep / "s0"), str(sweep / "s1"), "-o", str(tmp_path / "merged")]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("analysis.merge: refusing:") and "results.jsonl:2: not a JSON line" in line
    assert not (tmp_path / "merged" / "results.jsonl").exists()
