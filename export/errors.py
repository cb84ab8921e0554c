"""Errors the export toolchain raises; all are :class:`edge.errors.EdgeError`, so the CLI turns
them into one message and a non-zero exit code, never a traceback."""

from __future__ import annotations

from edge.errors import EdgeError


class ExportError(EdgeError):
    """An export could not be done as asked (exit code 8)."""

    exit_code = 8


class UnknownArchitectureError(ExportError):
    """The architecture name (or module:factory) does not resolve to a model."""


class WeightsError(ExportError):
    """A weight file is missing, unreadable, or does not fit the architecture."""


class UnsupportedOpError(ExportError):
    """The model uses an operation that the target format (or its converter) cannot express."""


class ParityError(ExportError):
    """An exported variant disagrees with torch beyond what its precision explains."""


class TrainingError(ExportError):
    """Training could not produce a usable model (e.g. the loss diverged)."""
