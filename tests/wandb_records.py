"""Read back what an offline W&B run wrote, with W&B's own record protos.

wandb 0.31 ships no Python reader for its ``run-<id>.wandb`` transaction log (its reader
lives in the Go core). The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``,
magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a CRC-32 of its type and
payload, a length and a type (full / first / middle / last). Every record is a
``wandb.proto.wandb_internal_pb2.Record``; this module checks each chunk's CRC and
decodes the records with that proto, so a corrupt file fails loudly.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    if data[: len(HEADER)] != HEADER:
        raise ValueError(f"not a W&B transaction log (header {data[:7]!r})")
    pos, pending = len(HEADER), b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        if zlib.crc32(bytes([kind]) + chunk) != crc:
            raise ValueError(f"CRC mismatch at byte {pos}")
        pos += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        else:
            raise ValueError(f"unknown chunk type {kind} at byte {pos}")


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class OfflineRun:
    """The parts of a W&B run the tests look at."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, str]] = field(default_factory=list)  # define_metric records
    exit_code: int | None = None

    @property
    def files_dir(self) -> Path:
        return self.path.parent / "files"


def read_run(path: Path) -> OfflineRun:
    """Decode one ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = OfflineRun(Path(path))
    for payload in _payloads(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out.run_id, out.name, out.group, out.job_type = r.run_id, r.display_name, r.run_group, r.job_type
            out.tags = list(r.tags)
            out.config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "config":
            out.config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out.summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "metric":
            m = record.metric
            out.metrics.append({"name": m.name or m.glob_name, "step_metric": m.step_metric})
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    return out


def offline_runs(directory: Path, wait_s: float = 0.0) -> list[OfflineRun]:
    """Every offline W&B run under ``directory``, oldest first.

    ``wait_s``: W&B's core process may still be writing a run that ``finish()`` already
    returned from (in this process); wait up to that long for every run's exit record.
    """
    deadline = time.monotonic() + wait_s
    while True:
        runs = [read_run(p) for p in sorted(Path(directory).glob("**/offline-run-*/run-*.wandb"))]
        if all(r.exit_code is not None for r in runs) or time.monotonic() >= deadline:
            return runs
        time.sleep(0.2)
