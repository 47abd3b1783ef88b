"""Errors of the domain stages.

Each subclasses the matching built-in so callers may catch either.
"""


class PosestreamError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PosestreamError, ValueError):
    """An input (file, stream, option) cannot be used; the message says why."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path does not exist."""


class OutputError(PosestreamError, OSError):
    """An output cannot be written."""


class ModelError(PosestreamError, RuntimeError):
    """A model file cannot be fetched, verified or loaded."""


class UsageError(InputError):
    """An option given where it means nothing (e.g. a file-only option on a live
    source); the command line exits 2 for it, as for other usage errors."""
