"""One run: config -> data, models, reward, method -> decoding loop -> files.

Writes into the run directory (Hydra's output directory by default):
``results.jsonl`` (a line per finished problem, flushed as it finishes),
``metrics.json`` (atomically, at the end) and ``config.yaml`` (the resolved config).
Problems already in ``results.jsonl`` are skipped, so a re-run resumes. Before any model
loads, the run directory is checked (:mod:`gsi.rundir`): writable, holding this
configuration or none, and locked for this run alone.
"""

from __future__ import annotations

import errno
import logging
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gsi.config import validate
from gsi.data import select
from gsi.errors import ConfigError, OutputFull
from gsi.grading import get_grader
from gsi.metrics import compute_metrics, format_summary
from gsi.interrupts import Progress, Terminated, sigterm_raises
from gsi.outputs import NO_REFERENCE, ResultStore, atomic_write_json, atomic_write_text, finished_metrics, is_error
from gsi.rundir import RunDirError, RunLock, check_identity, check_output_dir
from gsi.tracking import build_tracker
from gsi.types import CallStats, Problem, ProblemResult

log = logging.getLogger(__name__)


def _hydra_output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ConfigError("no output directory: call run(cfg, output_dir) or run through run.py")
    return Path(HydraConfig.get().runtime.output_dir)


def _instantiate(node: DictConfig, what: str):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(f"could not build {what} from {node.get('_target_')}: {cause}") from exc


def load_problems(cfg: DictConfig) -> list:
    """This job's problems: the data set's first ``limit``, then this shard's part, with
    their prompts in the model family's format (``model.prompt``)."""
    dataset = _instantiate(cfg.dataset, "the dataset")
    chosen = select(dataset.load(), cfg.limit, int(cfg.shard.index), int(cfg.shard.count))
    prompt = cfg.model.get("prompt")
    if prompt is None or prompt.get("style", "none") == "none":
        return chosen
    note = cfg.dataset.get("system_note")  # a data set's addition to the system prompt (Minerva: no units)
    if note:
        system = prompt.get("system")
        prompt = OmegaConf.merge(prompt, {"system": f"{system} {note}" if system else note})
    return _instantiate(prompt, "model.prompt").apply(chosen)


# Models loaded by earlier runs of this process, by their resolved config: a sweep run
# in one process (Hydra's basic launcher: `python run.py -m method=gsi,rsd`) loads each
# model once. A run keeps what it needs and frees the rest before loading anything new.
_LOADED: dict[str, object] = {}
_RETIRED: list[object] = []  # unused, but freeing them would break other engines (releasable=False)


def _cached(node: DictConfig, what: str, keep: set[str]):
    key = OmegaConf.to_yaml(node, resolve=True)
    keep.add(key)
    if key not in _LOADED:
        _release(keep)
        _LOADED[key] = _instantiate(node, what)
    model = _LOADED[key]
    cache = getattr(model, "prefix_cache", None)
    if cache is not None:  # same seed, same numbers: no KV computed in another run's batches
        cache.clear()
    return model


def _release(keep: set[str]) -> None:
    stale = [k for k in _LOADED if k not in keep]
    for k in stale:
        model = _LOADED.pop(k)
        if not getattr(model, "releasable", True):
            _RETIRED.append(model)
    if stale:
        import gc

        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def build_components(cfg: DictConfig, need_small: bool, need_big: bool) -> tuple:
    """(small, big, reward), loading only the models asked for (None for the others);
    models already loaded by an earlier run of this process are reused."""
    keep: set[str] = set()
    for role, needed in (("small", need_small), ("big", need_big)):
        if needed:  # reserve what this run reuses before anything is freed
            key = OmegaConf.to_yaml(cfg.model[role], resolve=True)
            if key in _LOADED:
                keep.add(key)
    reward_key = OmegaConf.to_yaml(cfg.reward, resolve=True)
    if reward_key in _LOADED:
        keep.add(reward_key)
    small = _cached(cfg.model.small, "model.small", keep) if need_small else None
    big = _cached(cfg.model.big, "model.big", keep) if need_big else None
    reward = _cached(cfg.reward, "the reward", keep)
    _release(keep)
    return small, big, reward


def run_problems(settings, components: tuple, grader, problems, on_result, on_step=None):
    """Decode ``problems`` with ``components`` = (small, big, reward): the one call that
    runs a configuration, used by :func:`run` and by ``analysis.benchmark``. Returns the
    loop's CallStats."""
    from gsi.decoding import Decoder

    return Decoder(settings, *components, grader).run(problems, on_result, on_step)


def run(cfg: DictConfig, output_dir: Path | None = None) -> dict:
    """Run (or resume) one configuration; return its metrics. Every way it can end early is
    one line on stderr and an exit code: 2 a config or run-directory problem, 3 a full disk,
    1 every problem failed, 130 / 143 interrupted (SIGINT / SIGTERM; the same command resumes)."""
    progress = Progress()
    try:
        with sigterm_raises():
            return _run(cfg, output_dir, progress)
    except RunDirError as exc:
        _fail(f"gsi: {exc}", 2)
    except ConfigError as exc:
        _fail(f"gsi: config error: {exc}", 2)
    except OutputFull as exc:
        _fail(f"gsi: {exc.strerror}", 3)
    except AllFailed as exc:
        _fail(f"gsi: {exc}", 1)
    except (KeyboardInterrupt, Terminated) as exc:
        signame, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        where = f" in {progress.out}" if progress.out is not None else ""
        _fail(f"gsi: interrupted ({signame}): {progress.saved()} of {progress.total} problems are saved{where}; "
              "run the same command again to resume", code)


def _fail(line: str, code: int):
    print(line, file=sys.stderr)
    raise SystemExit(code) from None


class AllFailed(RuntimeError):
    """Every problem of the run recorded an error: no number to report."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _open_run_dir(cfg: DictConfig, out: Path, progress: Progress) -> ResultStore:
    """Checks made, under the lock, before any model loads: the directory holds this
    configuration (or none yet), its results file can be appended to and read."""
    check_identity(out, cfg)
    try:
        store = ResultStore(out / "results.jsonl", retry_errors=bool(cfg.get("retry_errors", True)))
    except OSError as exc:
        raise RunDirError(f"{out / 'results.jsonl'} is not writable ({exc.strerror or exc}): make it writable "
                          "(chmod u+w, chattr -i) or pick another hydra.run.dir") from None
    except ValueError as exc:
        raise RunDirError(str(exc)) from None
    if store.retried:  # no longer finished: a launcher must not skip it, a report not count it
        (out / "metrics.json").unlink(missing_ok=True)
    try:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as exc:
        raise ConfigError(f"output directory {out} is not writable ({exc.strerror or exc}): "
                          "free space or pick another with hydra.run.dir=...") from None
    progress.store = store
    return store


def _warn_greedy_copies(settings) -> None:
    """One line when temperature 0 (a point-mass law) makes n > 1 candidates identical copies."""
    if settings.sampling.temperature != 0:
        return
    method = settings.method
    counts = {method.n_param: method.num_candidates(settings.n_small, settings.n_big)}
    if method.rejects:
        counts["n_big"] = settings.n_big
    many = [f"{key}={n}" for key, n in counts.items() if key != "one" and n > 1]
    if many:
        log.warning("temperature=0: the %s candidates of a step are identical copies of the greedy step "
                    "(drawn once; n = 1 gives the same steps)", " and ".join(many))


def _run(cfg: DictConfig, output_dir: Path | None, progress: Progress) -> dict:
    settings = validate(cfg)
    _warn_greedy_copies(settings)
    out = Path(output_dir) if output_dir is not None else _hydra_output_dir()
    progress.out = out
    check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output directory {out} is not writable ({exc.strerror or exc}): "
                          "pick another with hydra.run.dir=...") from None
    with RunLock(out):
        store = _open_run_dir(cfg, out, progress)
        return _run_locked(cfg, settings, out, store, progress)


def _run_locked(cfg: DictConfig, settings, out: Path, store: ResultStore, progress: Progress) -> dict:
    grader = get_grader(cfg.dataset.grader)
    problems = load_problems(cfg)
    wanted = {p.id for p in problems}
    progress.wanted, progress.total = wanted, len(problems)
    todo = [p for p in problems if p.id not in store.finished]
    method = settings.method
    done = None if todo else finished_metrics(out)
    if done is not None and done["num_problems"] == len(problems):  # finished earlier: keep its metrics
        print(format_summary(done, f"gsi run: method={method.name} (finished earlier) -> {out}"))
        _check_not_all_failed([store.rows[p.id] for p in problems])
        return done
    log.info(
        "method=%s beta=%s threshold=%s: %d problems (%d already done) -> %s",
        method.name, settings.params.beta, settings.params.threshold,
        len(problems), len(problems) - len(todo), out,
    )
    tracker = build_tracker(cfg, out, [store.rows[pid] for pid in store.rows if pid in wanted])
    if not problems:
        log.warning("no problems selected (data set %s, limit=%s, shard %s/%s): nothing to do",
                    cfg.dataset.get("name"), cfg.limit, cfg.shard.index, cfg.shard.count)
    start = time.perf_counter()
    stats = None
    if todo:
        models = build_components(cfg, method.proposer == "small", method.uses_big)
        start = time.perf_counter()
        with _progress(len(todo), cfg.progress, method.name) as bar:
            def on_result(result) -> None:
                store.append(result)
                tracker.problem(result)
                bar.update(1)

            try:
                for problem in todo:
                    if not problem.answer.strip():
                        on_result(_no_reference(problem))
                stats = run_problems(settings, models, grader, [p for p in todo if p.answer.strip()], on_result,
                                     tracker.step)
            except OSError as exc:
                tracker.abort()
                if exc.errno not in _FULL:
                    raise
                saved = len(store.finished)
                raise OutputFull(
                    exc.errno,
                    f"cannot write {store.path} ({exc.strerror}): the {saved} problems finished before are "
                    "saved; free space and run the same command again to resume",
                ) from None
            except BaseException:
                tracker.abort()
                raise
            finally:
                store.close()
    wall = time.perf_counter() - start
    if stats is None:
        stats = CallStats()
    rows = [store.rows[pid] for pid in store.rows if pid in wanted]
    metrics = compute_metrics(rows, stats, wall, len(todo))
    metrics.update({"method": method.name, "beta": settings.params.beta, "threshold": settings.params.threshold})
    atomic_write_json(out / "metrics.json", metrics)
    tracker.finish(metrics, rows)
    print(format_summary(metrics, f"gsi run: method={method.name} -> {out}"))
    _check_not_all_failed(rows)
    return metrics


def _check_not_all_failed(rows: list[dict]) -> None:
    if rows and all(is_error(r) for r in rows):
        first = rows[0]
        raise AllFailed(f"all {len(rows)} problems failed; the first ({first['problem_id']}): "
                        f"{str(first.get('error') or 'error').splitlines()[0]}")


def _no_reference(problem: Problem) -> ProblemResult:
    """A problem the data set gives no reference answer for: recorded as an error, not decoded."""
    return ProblemResult(
        problem_id=problem.id, correct=False, final_reward=float("nan"), steps=0, accepted_steps=0,
        latency_s=0.0, tokens_small=0, tokens_big=0, stop_reason="error", answer=None, reference="",
        error=NO_REFERENCE,
    )


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="problem", disable=not enabled, file=sys.stderr, mininterval=0.5)
