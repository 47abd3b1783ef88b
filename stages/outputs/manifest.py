"""The small manifest beside a batch input's outputs, which makes batches resumable.

It records the input's identity (size, mtime and a hash of its first and last
MiB), the settings that shape the outputs, the outputs and the frames written,
and, for the batch's report when the input is later skipped, the people found,
the processing time and whether the input was truncated or damaged.
It is removed before a new set of outputs is put in place and written only
after the whole set is (``stages.outputs.file_set``), so an input whose manifest
matches, and whose outputs hold every frame it says, was completed with the
same settings; a run killed mid-file leaves only temporary files and the input
is done again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from stages.outputs.atomic import commit, partial_path, remove_quietly
from stages.errors import OutputError

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


# Settings that shape only the annotated video: a run without it has none of them.
_VIDEO_ONLY = ("preset", "audio")


def output_settings(config) -> dict:
    """The JobConfig fields that change what is written (not how fast)."""
    c = asdict(config)
    keep = ("resolution", "model", "graph", "postprocess", "preset", "precision", "formats",
            "track", "audio", "video")
    out = {k: c[k] for k in keep if c["video"] or k not in _VIDEO_ONLY}
    out["resolution"] = list(out["resolution"])
    out["formats"] = list(out["formats"])
    out["graph"] = str(out["graph"]) if out["graph"] else None
    if c["track"]:  # the ids written depend on it
        out["track_memory"] = c["track_memory"]
    if c.get("video_stream") is not None:  # recorded when asked for: older manifests stay good
        out["video_stream"] = c["video_stream"]
    return out


def settings_serve(recorded: dict, wanted: dict) -> bool:
    """Whether outputs made with the ``recorded`` settings are what a run with
    ``wanted`` would write: the same settings, or the same but with the video
    when none is wanted (the keypoint files are the same either way; a set
    without the video never serves a run that wants one). Manifests written
    before ``video`` was recorded are of runs with the video.
    """
    if not isinstance(recorded, dict):
        return False
    recorded = {"video": True, **recorded}
    if recorded == wanted:
        return True
    if wanted.get("video") is False and recorded["video"] is True:
        keypoints = {k: v for k, v in recorded.items() if k not in _VIDEO_ONLY}
        return {**keypoints, "video": False} == wanted
    return False


def write_manifest(path: Path, identity: dict, settings: dict, outputs: tuple[Path, ...],
                   frames: int, engine: dict | None = None, *, people: int | None = None,
                   seconds: float | None = None, truncated: bool = False, frames_lost: int = 0
                   ) -> None:
    """Record a completed input at ``path`` (call after its outputs are in place;
    ``stages.outputs.file_set.manifest_path`` names it).

    ``engine`` (what ran the network), ``people`` (found over all frames),
    ``seconds`` (its processing time), ``truncated`` and ``frames_lost`` are
    kept for the record, so a later run that skips the input can still report
    them; they do not decide whether the input is complete.
    """
    data = {"input": identity, "settings": settings, "frames": frames,
            "outputs": [p.name for p in outputs], "engine": engine,
            "truncated": truncated, "frames_lost": frames_lost}
    if people is not None:
        data["people"] = people
    if seconds is not None:
        data["seconds"] = round(seconds, 6)  # a short file takes milliseconds: keep its FPS exact
    tmp = partial_path(path)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write the manifest ({exc.strerror})") from exc
    commit(tmp, path)


def completed(path: Path, identity: dict, settings: dict) -> dict | None:
    """The manifest at ``path`` if the outputs it lists are complete for this input
    and settings, else None.

    Every output is checked, not only trusted: the JSON Lines log has a line
    per frame, the OpenPose folder a file per frame, the COCO file is a whole
    array (opened and closed), the CSV table has its header and ends with a
    whole row, the video holds every frame.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if data.get("input") != identity or not settings_serve(data.get("settings"), settings):
        return None
    outputs = [Path(path).parent / name for name in data.get("outputs", [])]
    frames = data.get("frames")
    if not outputs or not isinstance(frames, int):
        return None
    if not all(_output_complete(p, frames) for p in outputs):
        return None
    return data


def _output_complete(path: Path, frames: int) -> bool:
    try:
        if path.name.endswith(".jsonl"):
            with open(path, "rb") as f:
                return sum(1 for line in f if line.endswith(b"\n")) == frames
        if path.name.endswith(".openpose"):
            return sum(1 for n in os.listdir(path) if n.endswith("_keypoints.json")) == frames
        if path.name.endswith(".coco.json"):  # opened with "[", closed with "]" on finish
            return _starts_and_ends(path, b"[", b"\n]\n")
        if path.name.endswith(".csv"):  # its header, then whole rows (none for nobody)
            return _starts_and_ends(path, b"source,frame,pts,", b"\n")
        if path.suffix.lower() in (".mp4", ".mov", ".m4v", ".mkv"):
            return _video_frames(path) in (frames, 0)  # 0: the container does not say
        return path.is_file()
    except (OSError, ValueError):
        return False


def _starts_and_ends(path: Path, head: bytes, tail: bytes) -> bool:
    with open(path, "rb") as f:
        if f.read(len(head)) != head:
            return False
        f.seek(0, os.SEEK_END)
        if f.tell() < len(head) + len(tail):
            return False
        f.seek(-len(tail), os.SEEK_END)
        return f.read() == tail


def _video_frames(path: Path) -> int:
    """Frames the container declares (0 when it does not say); -1 when unreadable."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            return container.streams.video[0].frames
    except (av.FFmpegError, IndexError):
        return -1


def is_complete(path: Path, identity: dict, settings: dict) -> bool:
    """Whether the outputs listed by the manifest at ``path`` are complete for this
    input and settings."""
    return completed(path, identity, settings) is not None
