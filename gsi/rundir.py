"""A run directory's guards: writable before anything starts, one configuration, one writer.

- :func:`check_output_dir`: the directory (or the folder it will be made in) exists as a
  directory, accepts a file and has space — checked before Hydra or the pipeline writes
  into it, so the answer is one line instead of a traceback.
- :func:`check_identity`: a directory whose ``config.yaml`` records another configuration
  (its result-relevant keys, :func:`gsi.launch.identity.identity`) is refused, naming the
  keys that differ, before any model loads.
- :class:`RunLock`: an OS lock (``flock``) on ``.gsi.lock`` held for the run's life. The
  kernel drops it when the process ends in any way, so a crash never leaves a stale lock;
  the file's text names the holder (pid, host, start time) for the second launch's message.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gsi.errors import ConfigError

LOCK_NAME = ".gsi.lock"


class RunDirError(ConfigError):
    """A run directory that cannot be used as it is (held by another run, a bad row)."""
MIN_FREE_BYTES = 1 << 20  # less than this cannot hold even a few result rows


def check_output_dir(path: Path, key: str = "hydra.run.dir") -> None:
    """Raise ConfigError (one line) unless ``path`` is, or can be made as, a writable directory."""
    path = Path(path)
    fix = f"pick another with {key}=..."
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output directory {path} is not writable: it exists and is a file, not a directory; {fix}")
    base = path
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"output directory {path} is not writable: it is under {base}, which is a file; {fix}")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".gsi-probe-")
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        reason = "no space left" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else exc.strerror
        raise ConfigError(f"output directory {path} is not writable ({reason} in {base}): {fix}") from None
    stat = os.statvfs(base)
    if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
        raise ConfigError(f"output directory {path} is not writable (no space left on {base}'s disk: "
                          f"{stat.f_bavail * stat.f_frsize} bytes free): free space or {fix}")


def check_identity(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse a run directory whose ``config.yaml`` records another configuration."""
    from gsi.launch.identity import identity, identity_diff

    recorded_path = Path(run_dir) / "config.yaml"
    if not recorded_path.is_file():
        return
    try:
        recorded = identity(OmegaConf.load(recorded_path))
    except Exception as exc:  # noqa: BLE001 - any unreadable record is the same answer
        raise ConfigError(f"{recorded_path} is unreadable ({str(exc).splitlines()[0]}): it records which "
                          "configuration this directory holds; restore it or pick another hydra.run.dir") from None
    diff = identity_diff(recorded, identity(cfg))
    if diff:
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(f"{run_dir} holds a run of another configuration: {'; '.join(diff[:3])}{more}. "
                          "Pick another hydra.run.dir (the default, outputs/runs/<name>-<hash>, is one per "
                          "configuration) or remove that directory")


class RunLock:
    """``with RunLock(run_dir): ...`` — exclusive for the run's life, or ConfigError naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirError(f"cannot open the run lock {self.path} ({exc.strerror}): make it writable "
                              "or pick another hydra.run.dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy(self.path.parent) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def busy(run_dir: Path) -> RunDirError:
    """The refusal for a directory another live process holds."""
    return RunDirError(f"{run_dir} is being written by another run ({holder(run_dir)}): "
                       "wait for it to end or stop it; two writers would decode every problem twice")


def holder(run_dir: Path) -> str:
    """Who holds the lock, as its file says (``pid 12 on node3 since ...``)."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock (a crashed one does not)."""
    import fcntl

    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock just taken
    return False
