"""Fault injection (#15): bad inputs and faults around a run directory, each answered with an
exit code, one line without a traceback, and the rows finished before left as they were.

Most cases run the pipeline in this process on a copy of one finished toy run; the ones
that need Hydra, a launcher, a second process or a signal run ``run.py`` (marked ``e2e``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gsi.pipeline
from gsi.pipeline import run
from tests.helpers import CONF, ROOT, assert_same_results, without_timing
from tests.sweep_utils import run_py

ARGS = ("method=gsi", "limit=6", "batch_size=2", "tracking=none", "progress=false")
LONG = ("method=gsi", "limit=24", "batch_size=2", "tracking=none", "progress=false")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=[*ARGS, *overrides])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished toy run (6 problems), copied by :func:`run_dir` for each test."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(compose(), out)
    return out


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def rows(path: Path) -> dict[str, dict]:
    out = {}
    for line in (path / "results.jsonl").read_text().splitlines():
        if line.strip():
            row = without_timing(json.loads(line))
            out[row["problem_id"]] = row
    return out


def refused(capsys, code: int, *overrides: str, where: Path) -> str:
    """Run in ``where``, expect SystemExit(code) and one line on stderr; return that line."""
    with pytest.raises(SystemExit) as exc:
        run(compose(*overrides), where)
    assert exc.value.code == code
    return one_line(capsys.readouterr().err)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def last_line(stderr: str) -> str:
    """The final line of a run.py's stderr (Hydra's and tqdm's chatter can come before)."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def unwritable(path: Path) -> None:
    """Make ``path`` refuse writes even for root (``chattr +i``), or skip."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root and chattr +i is not available here")


@pytest.fixture
def restore_writable():
    made: list[Path] = []
    yield made
    for path in made:
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o755)


# ------------------------------------------------------------------ 1. run identity
def test_another_method_into_a_finished_dir_is_refused(capsys, run_dir):
    before, config = rows(run_dir), (run_dir / "config.yaml").read_text()
    line = refused(capsys, 2, "method=small", where=run_dir)
    assert "holds a run of another configuration" in line and "method.name" in line and '"small" here' in line
    assert rows(run_dir) == before and (run_dir / "config.yaml").read_text() == config


def test_another_beta_into_a_half_finished_dir_is_refused_before_models_load(capsys, run_dir):
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:3]))
    (run_dir / "metrics.json").unlink()
    gsi.pipeline._release(set())  # nothing loaded: a refusal must not load anything
    line = refused(capsys, 2, "beta=0.5", where=run_dir)
    assert "beta (0.5 here, 20 recorded)" in line
    assert not gsi.pipeline._LOADED and len(rows(run_dir)) == 3


def test_many_differing_keys_are_named_and_counted(capsys, run_dir):
    line = refused(capsys, 2, "seed=3", "n_small=2", "threshold=0.1", "temperature=0.5", where=run_dir)
    assert "n_small (2 here, 4 recorded)" in line and "seed (3 here, 0 recorded)" in line
    assert "temperature" in line and "and 1 more" in line


def test_unreadable_config_record_is_refused(capsys, run_dir):
    before = rows(run_dir)
    (run_dir / "config.yaml").write_text("beta: [unclosed\n")
    line = refused(capsys, 2, where=run_dir)
    assert "config.yaml is unreadable" in line
    assert rows(run_dir) == before


def test_same_config_written_differently_is_the_same_run(capsys, run_dir):
    before = (run_dir / "results.jsonl").read_bytes()
    metrics = run(compose("beta=20", "progress=true", "retry_errors=false"), run_dir)
    assert metrics["num_problems"] == 6 and "finished earlier" in capsys.readouterr().out
    assert (run_dir / "results.jsonl").read_bytes() == before


@pytest.mark.e2e
def test_the_same_config_from_another_checkout_gets_the_same_directory(tmp_path):
    """A copy of the checkout elsewhere (as a second clone would be) names the run alike."""
    clone = tmp_path / "elsewhere" / "gsi-clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "__pycache__", "wandb"))
    code = ("import gsi.config; gsi.config.register(); from hydra import compose, initialize_config_dir\n"
            "from gsi.launch.identity import run_id\n"
            "with initialize_config_dir(config_dir=__import__('os').path.abspath('conf'), version_base='1.3'):\n"
            f"    print(run_id(compose('config', overrides={list(ARGS)!r})))\n")
    ids = []
    for where in (ROOT, clone):
        proc = subprocess.run([sys.executable, "-c", code], cwd=where, capture_output=True, text=True,
                              env={**ENV, "PYTHONPATH": str(where)}, timeout=300)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip().splitlines()[-1])
    assert ids[0] == ids[1]
    from gsi.launch.identity import identity

    assert identity(compose())["model.small.path"] == "gsi:toy/assets/small"


@pytest.mark.e2e
def test_run_py_refuses_another_config_before_hydra_rewrites_the_dir(tmp_path):
    out = tmp_path / "run"
    first = run_py(*ARGS, f"hydra.run.dir={out}")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in [out / "results.jsonl", out / "config.yaml", out / ".hydra" / "overrides.yaml"]}
    proc = run_py(*ARGS, "method=small", f"hydra.run.dir={out}")
    assert proc.returncode == 2
    assert "holds a run of another configuration: method.name" in one_line(proc.stderr)
    assert before == {p.name: p.read_bytes() for p in [out / "results.jsonl", out / "config.yaml",
                                                        out / ".hydra" / "overrides.yaml"]}


# ------------------------------------------------------------------ 2. one writer
def _hold_lock(where: Path) -> subprocess.Popen:
    """A second, real process that holds ``where``'s run lock until killed."""
    code = ("import sys, time; from gsi.rundir import RunLock\n"
            f"with RunLock({str(where)!r}):\n    print('holding', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**ENV, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_run_dir_held_by_another_process_is_refused_naming_it(capsys, run_dir):
    (run_dir / "metrics.json").unlink()
    before = rows(run_dir)
    holder = _hold_lock(run_dir)
    try:
        line = refused(capsys, 2, where=run_dir)
    finally:
        holder.kill()
        holder.wait()
    assert f"being written by another run (pid {holder.pid} on " in line
    assert rows(run_dir) == before


def test_the_lock_of_a_killed_process_is_not_stale(capsys, run_dir):
    from gsi.rundir import is_locked

    (run_dir / "metrics.json").unlink()
    holder = _hold_lock(run_dir)
    assert is_locked(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not is_locked(run_dir)
    assert run(compose(), run_dir)["num_problems"] == 6


@pytest.mark.e2e
def test_two_concurrent_launches_of_one_config_decode_each_problem_once(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *LONG, f"hydra.run.dir={out}"], cwd=ROOT,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "results.jsonl").exists() and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second started; make it longer"
    second = run_py(*LONG, f"hydra.run.dir={out}")
    assert second.returncode == 2
    line = last_line(second.stderr)
    assert f"pid {first.pid}" in line and "being written by another run" in line
    assert first.wait(timeout=600) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 24 == len({json.loads(x)["problem_id"] for x in lines})
    assert json.loads((out / "metrics.json").read_text())["num_problems"] == 24


@pytest.mark.e2e
def test_a_sweep_skips_the_job_another_process_is_running(tmp_path):
    from gsi.launch.identity import run_id

    sweep = tmp_path / "sweep"
    busy = sweep / run_id(compose("beta=2"))
    busy.mkdir(parents=True)
    holder = _hold_lock(busy)
    try:
        proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "beta=0.5,2")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "skipped, being written by pid" in proc.stdout + proc.stderr
    assert not (busy / "results.jsonl").exists()
    assert (sweep / run_id(compose("beta=0.5")) / "metrics.json").exists()


# ------------------------------------------------------------------ 3. error rows
def _with_errors(run_dir: Path, which: slice) -> list[str]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    ids = []
    for k in range(len(lines))[which]:
        row = json.loads(lines[k])
        row.update(error="RuntimeError: injected", stop_reason="error", correct=False)
        lines[k] = json.dumps(row, sort_keys=True)
        ids.append(row["problem_id"])
    (run_dir / "results.jsonl").write_text("".join(x + "\n" for x in lines))
    return ids


def test_error_rows_are_retried_by_default(run_dir, finished):
    reference = rows(finished)
    bad = _with_errors(run_dir, slice(1, 3))
    metrics = run(compose(), run_dir)
    assert metrics["num_errors"] == 0 and metrics["new_problems"] == 2
    assert_same_results(rows(run_dir), reference)
    quarantined = [json.loads(x) for x in (run_dir / "results.jsonl.bad").read_text().splitlines()]
    assert [r["problem_id"] for r in quarantined] == bad


def test_retry_errors_false_keeps_the_error_rows(run_dir):
    _with_errors(run_dir, slice(0, 1))
    before = (run_dir / "results.jsonl").read_bytes()
    metrics = run(compose("retry_errors=false"), run_dir)
    assert (run_dir / "results.jsonl").read_bytes() == before and metrics["num_problems"] == 6


def test_a_run_whose_every_problem_errored_exits_nonzero_with_the_first_error(capsys, run_dir):
    _with_errors(run_dir, slice(None))
    json.dump({**json.loads((run_dir / "metrics.json").read_text()), "num_errors": 6},
              (run_dir / "metrics.json").open("w"))
    before = (run_dir / "results.jsonl").read_bytes()
    with pytest.raises(SystemExit) as exc:
        run(compose("retry_errors=false"), run_dir)
    assert exc.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert "all 6 problems failed" in line and "RuntimeError: injected" in line
    assert (run_dir / "results.jsonl").read_bytes() == before


@pytest.mark.e2e
def test_a_failed_job_does_not_stop_the_basic_sweep(tmp_path, finished):
    from gsi.launch.identity import run_id

    sweep = tmp_path / "sweep"
    failed = sweep / run_id(compose())
    shutil.copytree(finished, failed)
    _with_errors(failed, slice(None))
    before = (failed / "results.jsonl").read_bytes()
    proc = run_py("-m", *ARGS, f"hydra.sweep.dir={sweep}", "retry_errors=false", "beta=20,2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "all 6 problems failed" in proc.stderr
    assert last_line(proc.stderr).startswith("gsi: 1 of 2 jobs did not finish (#0)")
    assert (sweep / run_id(compose("beta=2")) / "metrics.json").exists()
    assert (failed / "results.jsonl").read_bytes() == before


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
