"""The project's exceptions, in a leaf module every layer may import."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message is one line for the user.

    ``key`` is the offending config key relative to where the raising class sits in the
    config (e.g. ``batch_size`` inside a reward); :func:`ConfigError.under` prefixes the group
    path (``reward.``) so the message names the full key whatever class raised it.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def under(self, prefix: str) -> "ConfigError":
        """This error with its key (and the message's leading ``key=``) under ``prefix``."""
        if not self.key:
            return self
        message = str(self)
        full = f"{prefix}.{self.key}"
        if message.startswith(f"{self.key}=") or message.startswith(f"{self.key} "):
            message = full + message[len(self.key):]
        err = ConfigError(message, full)
        err.__cause__ = self.__cause__
        return err


class ContextOverflow(ValueError):
    """A prompt plus a step's token budget does not fit the model's context window.

    The loop stops that problem with ``stop_reason = "context_length"``; the rest of the
    batch goes on.
    """


class OutputFull(OSError):
    """The results file stopped accepting writes mid-run (disk full, quota, file size)."""
