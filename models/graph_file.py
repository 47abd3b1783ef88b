"""Telling a TensorFlow frozen graph (a serialized GraphDef) from any other file, cheaply.

Engines given something else fail only once a model copy loads, after
printing their own parser's log lines (OpenVINO's TensorFlow front end
writes protobuf errors straight to stderr). Reading the file's top-level
protobuf fields takes milliseconds and needs no engine.
"""

from __future__ import annotations

import mmap
import os
from contextlib import nullcontext
from pathlib import Path

from pipeline.errors import InputError

# GraphDef's fields (tensorflow/core/framework/graph.proto): number -> protobuf wire type
_GRAPHDEF_FIELDS = {1: 2, 2: 2, 3: 0, 4: 2, 5: 2}  # node, library, version, versions, debug_info
_NODE = 1
_VARINT, _LEN = 0, 2


def check_frozen_graph(path: Path, what: str = "--graph") -> None:
    """Check that ``path`` holds a serialized GraphDef with at least one node.

    Raises:
        InputError: Unreadable, or not a GraphDef (one line naming ``what`` and the file).
    """
    try:
        with open(path, "rb") as f, _mapped(f) as data:
            problem = _graphdef_problem(data)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None
    if problem:
        raise InputError(f"{what} {path}: not a TensorFlow frozen graph ({problem})")


def _mapped(f):
    """The open file's bytes, mapped rather than read: only the field headers are
    touched, even in a 200 MB graph (an empty file cannot be mapped)."""
    if os.fstat(f.fileno()).st_size == 0:
        return nullcontext(b"")
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _graphdef_problem(data: bytes | mmap.mmap) -> str | None:
    """What stops ``data`` from being a GraphDef, or None."""
    pos, nodes = 0, 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        if tag is None:
            return f"cut short at byte {len(data)}"
        field, wire = tag >> 3, tag & 7
        if _GRAPHDEF_FIELDS.get(field) != wire:
            return f"unexpected data at byte {start}"
        value, pos = _varint(data, pos)
        if value is None:
            return f"cut short at byte {len(data)}"
        if wire == _LEN:
            pos += value
            if pos > len(data):
                return f"cut short at byte {len(data)}"
        nodes += field == _NODE
    return None if nodes else "no nodes"


def _varint(data: bytes | mmap.mmap, pos: int) -> tuple[int | None, int]:
    """A protobuf varint at ``pos``, and the position after it (None if the data ends first)."""
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None, pos
