"""Errors of the domain stages: the project's hierarchy, defined in
``pipeline.errors`` (where ``models/`` can use it too) and re-exported here.

Each subclasses the matching built-in so callers may catch either.
"""

from pipeline.errors import (InputError, InputNotFoundError, ModelError, OutputError,
                             PosestreamError, UsageError)

__all__ = ["InputError", "InputNotFoundError", "ModelError", "OutputError", "PosestreamError",
           "UsageError"]
