"""Errors the CLI turns into one-line messages.

Every user-facing failure raises a subclass of `EdgeposeError` whose message names
what was wrong, the offending value, and the fix. Anything else escaping a command
is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeposeError(Exception):
    """A user error: bad input, bad option, wrong file. One line, no traceback."""


class ConfigError(EdgeposeError):
    """A model config or option value is invalid."""


class DataError(EdgeposeError):
    """A dataset, annotation file, label file or image is missing or malformed."""


class ModelFileError(EdgeposeError):
    """A checkpoint or ONNX file is missing, corrupt, or of the wrong kind."""


class CalibrationError(EdgeposeError):
    """Calibration images are missing, unreadable or too few."""


class ExportError(EdgeposeError):
    """Export failed for a reason the user can fix (opset, output path, ...)."""


class OutputError(EdgeposeError):
    """An output location cannot be written (missing folder, no permission, disk full)."""
