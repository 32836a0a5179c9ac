"""Benchmarks from the Hugging Face hub (or local copies of them) as lists of :class:`Problem`.

One class, :class:`HubDataset`, configured per data set in ``conf/dataset/``: the hub id,
subset and split, which columns hold the problem, the answer and the id (and the options
of a multiple-choice question), and how the reference answer is written. A
``local_path`` (a file or a folder of json/jsonl/parquet/csv with the hub's columns)
replaces the download; both go through ``datasets.load_dataset`` and the same row mapping.

Bad data is handled here or reported, never silently changed:
- a missing local file, a missing column, or undecodable bytes: :class:`ConfigError`,
  one line naming the file (and the byte offset), before any model loads;
- ``on_bad_bytes=replace`` instead decodes with U+FFFD and logs a warning per file;
- an empty data set: a warning and no problems;
- a row without a reference answer: kept with ``answer=""`` and counted in a warning;
  the pipeline records it as an error row without decoding it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from gsi.errors import ConfigError
from gsi.types import Problem


@dataclass
class FieldsConfig:
    """Columns of the data set; ``id: null`` numbers the rows (``<name>-00042``)."""

    problem: str = "problem"
    answer: str = "answer"
    id: Optional[str] = None
    choices: Optional[str] = None  # a list column of options (multiple choice)


log = logging.getLogger(__name__)

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
TEXT_SUFFIXES = {".jsonl", ".json", ".csv"}
LETTERS = "ABCDEFGHIJ"


# ------------------------------------------------------------------ reference answers
def _unwrap_math(s: str) -> str:
    """``"$\\frac12$"`` -> ``"\\frac12"``; an escaped ``\\$`` (a price) stays."""
    s = s.strip()
    if len(s) > 1 and s.startswith("$") and s.endswith("$") and not s.endswith("\\$"):
        return s.strip("$").strip()
    return s


def _plain(value: Any) -> str:
    return "" if value is None else _unwrap_math(str(value))


def _after_hashes(value: Any) -> str:
    """GSM8K: ``"...reasoning...\\n#### 72"`` -> ``"72"``."""
    text = "" if value is None else str(value)
    return text.rsplit("####", 1)[1].strip() if "####" in text else ""


def _first_item(value: Any) -> str:
    """OlympiadBench's ``final_answer``: a list of answers, the first is the reference."""
    if isinstance(value, (list, tuple)):
        return _plain(value[0]) if value else ""
    return _plain(value)


def _letter(value: Any) -> str:
    """MMLU: option index ``1`` -> ``"B"``; a letter stays a letter."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and not value.strip().isdigit():
        return value.strip().upper()
    index = int(value)
    return LETTERS[index] if 0 <= index < len(LETTERS) else ""


ANSWER_FORMATS: dict[str, Callable[[Any], str]] = {
    "plain": _plain,
    "after_hashes": _after_hashes,
    "first_item": _first_item,
    "letter": _letter,
}


def with_options(question: str, options: list[Any]) -> str:
    """The question followed by its lettered options (``A. ...``), one per line."""
    lines = [f"{LETTERS[i]}. {str(o).strip()}" for i, o in enumerate(options)]
    return question.rstrip() + "\n" + "\n".join(lines)


# ------------------------------------------------------------------ local files
def local_files(local_path: str) -> tuple[str, list[Path]]:
    """(builder, files) of a local copy; a folder's files are read in name order."""
    path = Path(local_path).expanduser()
    if not path.exists():
        raise ConfigError(
            f"dataset.local_path={local_path!r} does not exist: point it at a .jsonl/.json/.parquet/.csv "
            "file (or a folder of them) with the hub data set's columns, or set dataset.local_path=null"
        )
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    files = [p for p in files if p.suffix.lower() in BUILDERS and not p.name.startswith(".")]
    builders = {BUILDERS[p.suffix.lower()] for p in files}
    if len(builders) != 1:
        found = "no data files" if not files else f"mixed formats {sorted(builders)}"
        raise ConfigError(
            f"dataset.local_path={local_path!r} has {found}: it must be one .jsonl/.json/.parquet/.csv file "
            "or a folder of files of one format"
        )
    return builders.pop(), files


def check_utf8(files: list[Path], on_bad_bytes: str, scratch: Path) -> list[Path]:
    """The files to load: text files must be UTF-8. ``error``: a ConfigError naming the file
    and byte offset; ``replace``: a copy with U+FFFD for bad bytes, with a warning."""
    out = []
    for path in files:
        if path.suffix.lower() not in TEXT_SUFFIXES:
            out.append(path)
            continue
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            out.append(path)
        except UnicodeDecodeError as exc:
            where = f"{path}: byte {exc.start} (0x{data[exc.start]:02x}) is not UTF-8"
            if on_bad_bytes != "replace":
                raise ConfigError(
                    f"{where}: re-encode the file as UTF-8, or set dataset.on_bad_bytes=replace "
                    "to read bad bytes as U+FFFD"
                ) from None
            log.warning("%s; reading bad bytes as U+FFFD (dataset.on_bad_bytes=replace)", where)
            copy = scratch / f"{len(out):04d}-{path.name}"
            copy.write_text(data.decode("utf-8", errors="replace"), encoding="utf-8")
            out.append(copy)
    return out


# ------------------------------------------------------------------ the data set
class HubDataset:
    """A benchmark from the hub or a local copy; ``load()`` gives its problems in file order."""

    def __init__(
        self,
        name: str,
        path: str,
        split: str = "test",
        subset: str | None = None,
        revision: str | None = None,
        local_path: str | None = None,
        fields: Mapping[str, Any] | None = None,
        answer_format: str = "plain",
        grader: str = "math_verify",
        on_bad_bytes: str = "error",
        cache_dir: str | None = None,
        system_note: str | None = None,  # added to the system prompt by gsi.pipeline.load_problems
    ) -> None:
        if answer_format not in ANSWER_FORMATS:
            raise ConfigError(f"dataset.answer_format={answer_format!r} is not allowed: choose one of "
                              f"{', '.join(ANSWER_FORMATS)}")
        if on_bad_bytes not in ("error", "replace"):
            raise ConfigError(
                f"dataset.on_bad_bytes={on_bad_bytes!r} is not allowed: choose error or replace"
            )
        self.name = name
        self.path = path
        self.split = split
        self.subset = subset
        self.revision = revision
        self.local_path = local_path
        self.fields = FieldsConfig(**dict(fields or {}))
        self.answer_format = answer_format
        self.grader = grader
        self.on_bad_bytes = on_bad_bytes
        self.cache_dir = cache_dir

    @property
    def source(self) -> str:
        if self.local_path:
            return str(self.local_path)
        return f"{self.path}" + (f" ({self.subset})" if self.subset else "") + f" split {self.split}"

    def rows(self):
        """The raw rows, as ``datasets`` loads them (hub or local files, same call)."""
        import datasets

        if not self.local_path:
            try:
                return datasets.load_dataset(self.path, self.subset, split=self.split, revision=self.revision,
                                             cache_dir=self.cache_dir)
            except Exception as exc:  # noqa: BLE001 - offline, unknown id, bad split: one line for the user
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(
                    f"could not load {self.source} from the hub ({first}): check dataset.path/subset/split, "
                    "or download it and set dataset.local_path=..."
                ) from exc
        builder, files = local_files(self.local_path)
        if all(p.stat().st_size == 0 or not p.read_bytes().strip() for p in files):
            return []
        scratch = Path(tempfile.mkdtemp(prefix="gsi-data-"))
        try:
            files = check_utf8(files, self.on_bad_bytes, scratch)
            return datasets.load_dataset(builder, data_files={self.split: [str(p) for p in files]},
                                         split=self.split, cache_dir=self.cache_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def load(self) -> list[Problem]:
        rows = self.rows()
        if len(rows) == 0:
            log.warning("data set %s (%s) is empty: no problems to run", self.name, self.source)
            return []
        self._check_columns(rows.column_names)
        to_answer = ANSWER_FORMATS[self.answer_format]
        f = self.fields
        problems, seen, unanswered = [], set(), 0
        for i, row in enumerate(rows):
            text = "" if row[f.problem] is None else str(row[f.problem])
            if f.choices:
                text = with_options(text, list(row[f.choices] or []))
            answer = to_answer(row[f.answer])
            unanswered += not answer
            pid = f"{self.name}-{i:05d}" if f.id is None else str(row[f.id])
            if pid in seen:
                raise ConfigError(
                    f"{self.source}: id {pid!r} appears twice in column dataset.fields.id={f.id!r}: "
                    "ids must be unique (set dataset.fields.id=null to number the rows)"
                )
            seen.add(pid)
            problems.append(Problem(id=pid, prompt=text, answer=answer, question=text))
        if unanswered:
            log.warning("data set %s: %d of %d problems have no reference answer; they are recorded as "
                        "errors without decoding", self.name, unanswered, len(problems))
        return problems

    def _check_columns(self, columns: list[str]) -> None:
        for key in ("problem", "answer", "id", "choices"):
            column = getattr(self.fields, key)
            if column is not None and column not in columns:
                raise ConfigError(f"dataset.fields.{key}={column!r} is not a column of {self.source}: "
                                  f"its columns are {', '.join(columns)}")
