"""One exception tree for the whole runtime.

The CLI turns any :class:`EdgeError` into a one-paragraph message and an exit code,
never a traceback. Each subclass says *what* was wrong; the message says what to do.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class BundleError(EdgeError):
    """A bundle or inspector directory is missing, malformed, tampered or mismatched."""

    exit_code = 3


class ImageError(EdgeError):
    """An image could not be read or decoded."""

    exit_code = 4


class ConfigError(EdgeError):
    """A configuration value is invalid."""

    exit_code = 5


class BackendError(EdgeError):
    """An inference runtime is missing or refused the model."""

    exit_code = 6


class DataError(EdgeError):
    """A dataset folder does not have the expected layout or content."""

    exit_code = 7


class SourceError(EdgeError):
    """A camera, stream or folder cannot be opened or read."""

    exit_code = 8


class GpioError(EdgeError):
    """A GPIO chip or line cannot be opened or driven."""

    exit_code = 9


class PipelineError(EdgeError):
    """A pipeline worker failed in a way that is not about one frame."""

    exit_code = 6
