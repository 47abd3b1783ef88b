"""The small manifest beside a batch input's outputs, which makes batches resumable.

It records the input's identity (size, mtime and a hash of its first and last
MiB), the settings that shape the outputs, and the frames written. It is
written only after the outputs were renamed into place, so an input whose
manifest matches was completed with the same settings; a run killed mid-file
leaves only temporary files and the input is done again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from stages.atomic import commit, partial_path

log = logging.getLogger(__name__)

_EDGE = 1 << 20  # bytes hashed at each end


def input_identity(path: Path) -> dict:
    """Size, mtime and a SHA-256 of the first and last MiB of ``path``."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_EDGE))
        if st.st_size > _EDGE:
            f.seek(max(_EDGE, st.st_size - _EDGE))
            h.update(f.read(_EDGE))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_tail_sha256": h.hexdigest()}


def output_settings(config) -> dict:
    """The JobConfig fields that change what is written (not how fast)."""
    c = asdict(config)
    keep = ("resolution", "model", "graph", "postprocess", "preset", "precision", "formats",
            "track", "audio")
    out = {k: c[k] for k in keep}
    out["resolution"] = list(out["resolution"])
    out["formats"] = list(out["formats"])
    out["graph"] = str(out["graph"]) if out["graph"] else None
    return out


def manifest_path(video: Path) -> Path:
    """The manifest beside an input's annotated video."""
    return video.with_name(f"{video.stem}.manifest.json")


def write_manifest(video: Path, identity: dict, settings: dict, outputs: tuple[Path, ...],
                   frames: int, engine: dict | None = None) -> None:
    """Record a completed input (call after its outputs are in place).

    ``engine`` (what ran the network) is kept for the record; it does not
    decide whether the input is complete.
    """
    data = {"input": identity, "settings": settings, "frames": frames,
            "outputs": [p.name for p in outputs], "engine": engine}
    path = manifest_path(video)
    tmp = partial_path(path)
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    commit(tmp, path)


def completed(video: Path, identity: dict, settings: dict) -> dict | None:
    """The manifest beside ``video`` if its outputs are complete for this input
    and settings, else None."""
    try:
        data = json.loads(manifest_path(video).read_text())
    except (OSError, ValueError):
        return None
    if data.get("input") != identity or data.get("settings") != settings:
        return None
    outputs = [video.parent / name for name in data.get("outputs", [])]
    if not outputs or not all(p.exists() for p in outputs):
        return None
    for log_path in (p for p in outputs if p.suffix == ".jsonl"):  # a log has a line per frame
        with open(log_path, "rb") as f:
            if sum(1 for _ in f) != data.get("frames"):
                return None
    return data


def is_complete(video: Path, identity: dict, settings: dict) -> bool:
    """Whether the outputs beside ``video`` are complete for this input and settings."""
    return completed(video, identity, settings) is not None
