"""Which W&B mode a run gets (online only with credentials; never a login prompt)."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

# W&B's public API hosts (wandb >= 0.26 defaults to the first; `wandb login` writes netrc for it).
WANDB_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")


def logged_in() -> bool:
    """Whether W&B credentials are present (env or netrc), without asking anyone."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    base = os.environ.get("WANDB_BASE_URL")
    hosts = [urlparse(base).hostname or ""] if base else list(WANDB_HOSTS)
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any((auth := entries.authenticators(host)) and auth[2] for host in hosts)


def resolve_mode(requested: str) -> str:
    """``auto`` -> ``WANDB_MODE`` if set, else online when logged in, else offline.
    ``online`` without credentials becomes offline (W&B would otherwise prompt)."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    mode = requested
    if mode == "auto" and env:
        mode = {"dryrun": "offline", "run": "online"}.get(env, env)
    if mode == "auto":
        return "online" if logged_in() else "offline"
    if mode == "online" and not logged_in():
        log.warning("tracking.mode=online but no W&B credentials (WANDB_API_KEY or netrc): logging offline")
        return "offline"
    return mode
