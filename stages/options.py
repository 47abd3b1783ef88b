"""Which command-line option means something in which mode.

Modes: ``file`` (one video file), ``image`` (one still image), ``batch``
(several files, a folder, a glob, ``--list`` or ``--cluster``) and ``live``
(streams and cameras). An option is honoured in every mode listed for it and
rejected in the others with one line naming it and the mode (exit 2, a usage
error), never silently ignored. ``API`` says how the Python API
(``stages.api``) takes each option, or None where it has no such thing.
The README's "Options by mode" table is this table.
"""

from __future__ import annotations

import argparse

from stages.errors import UsageError

FILE, IMAGE, BATCH, LIVE = "file", "image", "batch", "live"
MODES = (FILE, IMAGE, BATCH, LIVE)
ALL = frozenset(MODES)
VIDEOS = frozenset({FILE, BATCH})
_NAMES = {FILE: "a video file", IMAGE: "an image", BATCH: "a batch", LIVE: "live sources"}
_PLURAL = {FILE: "video files", IMAGE: "images", BATCH: "batches", LIVE: "live sources"}

# option dest -> the modes that honour it
OPTION_MODES: dict[str, frozenset[str]] = {
    **dict.fromkeys(("input", "sources", "outdir", "resolution", "device", "workers", "backend",
                     "precision", "batch", "batch_timeout", "queue_size", "resize_out_ratio",
                     "smooth_kernel", "smooth_sigma", "refine", "model", "graph", "formats",
                     "track", "video", "audio", "config", "preview", "summary_json", "verbose",
                     "debug", "show"), ALL),  # show: an image stays shown until q
    "preset": ALL - {IMAGE},  # an image is not encoded with x264
    "track_memory": ALL - {IMAGE},  # one picture: nobody to remember
    **dict.fromkeys(("frame_step", "start", "end"), VIDEOS),
    **dict.fromkeys(("list", "force", "files_in_flight", "cluster"), frozenset({BATCH})),
    **dict.fromkeys(("rtsp_transport", "stall_timeout", "max_retries", "segment", "live_queue",
                     "max_fps", "record", "retain", "max_disk", "live_log_size", "mqtt",
                     "http", "camera_size", "camera_fps", "camera_format", "mirror"),
                    frozenset({LIVE})),
}

# option dest -> how the Python API takes it (None: it has no such thing)
API: dict[str, str | None] = {
    "input": "results(input) / run(input)", "outdir": "run(outdir)", "sources": None,
    **{dest: f"JobConfig.{dest}" for dest in (
        "resolution", "device", "workers", "backend", "precision", "batch", "batch_timeout",
        "queue_size", "model", "graph", "formats", "track", "track_memory", "video", "audio",
        "preset",
        "frame_step", "start", "end")},
    **{dest: f"JobConfig.postprocess.{dest}" for dest in (
        "resize_out_ratio", "smooth_kernel", "smooth_sigma", "refine")},
    "rtsp_transport": "results(live=LiveConfig.transport)",
    "stall_timeout": "results(live=LiveConfig.stall_timeout)",
    "max_retries": "results(live=LiveConfig.max_retries)",
    "live_queue": "results(live=LiveConfig.queue_size)",
    "mqtt": "results(live=LiveConfig.mqtt)",
    **{dest: f"results(live=LiveConfig.{dest})" for dest in (
        "camera_size", "camera_fps", "camera_format", "mirror", "max_fps")},
    **dict.fromkeys(("list", "force", "files_in_flight", "cluster", "segment", "config", "preview",
                     "summary_json", "verbose", "debug", "http", "show"), None),
    # what a live run writes; results() writes nothing and rejects them
    **dict.fromkeys(("record", "retain", "max_disk", "live_log_size"), None),
}


def given(args: argparse.Namespace, parser: argparse.ArgumentParser, dest: str) -> bool:
    """Whether ``dest`` was set on the command line (to other than its default)."""
    return getattr(args, dest) != parser.get_default(dest)


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser, mode: str) -> None:
    """Every option given means something in ``mode``.

    Args:
        args: The parsed options.
        parser: The parser, with the config file's values as its defaults: a
            config file serves several modes, so only the command line's
            options are checked against the mode.
        mode: One of ``MODES``.

    Raises:
        UsageError: One line naming the first option that means nothing here.
    """
    for action in parser._actions:
        modes = OPTION_MODES.get(action.dest)
        if modes is None or mode in modes or not given(args, parser, action.dest):
            continue
        where = " and ".join(_PLURAL[m] for m in MODES if m in modes)
        raise UsageError(f"{_flag(action)} is for {where}, not {_NAMES[mode]}")
    if not args.video and args.record != "none" and given(args, parser, "record"):
        raise UsageError(f"--record {args.record} records a video: --no-video means --record none")
    if not args.track and given(args, parser, "track_memory"):
        raise UsageError("--track-memory sets how long ids are kept: there are none with --no-track")
    if not args.video and given(args, parser, "preset"):
        raise UsageError("--preset sets the video's encoder: nothing is encoded with --no-video")
    for dest in ("preview", "files_in_flight", "show"):  # the files are processed elsewhere
        if args.cluster and given(args, parser, dest):
            raise UsageError(f"--{dest.replace('_', '-')} is for batches on this machine, "
                             "not with --cluster")


def _flag(action: argparse.Action) -> str:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0] if longs else action.dest
