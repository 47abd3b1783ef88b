"""Expanding batch inputs (files, directories, globs, list files) into work items."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from stages.sources.probe import is_image
from stages.errors import InputError, InputNotFoundError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts",
                              ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"})


def is_media(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video (``VIDEO_EXTENSIONS``) or a still image
    (``is_image``) by its extension, in any case; the file need not exist."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS or is_image(path)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input of a batch.

    Attributes:
        path: The file.
        rel: Its path relative to the common root of all inputs: the outputs
            mirror it, so same-named files in different folders never collide.
    """

    path: Path
    rel: Path

    @property
    def key(self) -> str:
        """A unique id for the item (its relative path)."""
        return self.rel.as_posix()


def expand_inputs(specs: list[str], list_file: Path | None = None) -> list[BatchItem]:
    """Files named, files under directories (recursively, media extensions only),
    glob matches and the lines of ``list_file``; duplicates once, sorted.

    Raises:
        InputNotFoundError: A named file or directory does not exist.
        InputError: A glob matches nothing, or the list file cannot be read.
    """
    paths: list[Path] = []
    for spec in specs + (_read_list(list_file) if list_file else []):
        paths += _expand(spec)
    unique = sorted({p.resolve(): p for p in paths}.keys())
    if not unique:
        raise InputError("no input files found")
    root = Path(os.path.commonpath([p.parent for p in unique]))
    return [BatchItem(p, p.relative_to(root)) for p in unique]


def _expand(spec: str) -> list[Path]:
    if glob.has_magic(spec):
        found = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
        if not found:
            raise InputError(f"{spec}: the pattern matches no file")
        return found
    path = Path(spec)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and is_media(p)
                 and not p.name.startswith(".")]
        if not found:
            raise InputError(f"{spec}: a directory with no video or image file in it")
        return found
    if not path.exists():
        raise InputNotFoundError(f"{spec}: no such file or directory")
    return [path]


def _read_list(path: Path) -> list[str]:
    """The paths a list file names: UTF-8 (a leading BOM dropped; bytes that are
    not UTF-8 kept as the file system's own), one a line, blanks and # comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise InputError(f"--list {path}: cannot read ({exc.strerror})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
