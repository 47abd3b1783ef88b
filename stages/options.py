"""Which option means something in which mode: the one table of that rule.

Modes: ``file`` (one video file), ``image`` (one still image), ``batch``
(several files, a folder, a glob, ``--list`` or ``--cluster``) and ``live``
(streams and cameras). An option is honoured in every mode listed for it and
rejected in the others with one line naming it and the mode (exit 2, a usage
error), never silently ignored. ``CONFLICTS`` are the pairs of options that
exclude each other. ``API`` says how the Python API (``stages.api``) takes
each option, or None where it has no such thing.

Everything that decides an option's place reads this module: the command
line (``check_options``), the Python API (``check_settings``) and the
options reference of the docs (``markdown_table``, through
``docs/gen_reference.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

from stages.errors import UsageError
from stages.settings import JobConfig, LiveConfig, PostprocessConfig, flag_of

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
    "video_stream": VIDEOS,  # an image has one picture; a live source names its stream itself
    **dict.fromkeys(("list", "force", "files_in_flight", "cluster"), frozenset({BATCH})),
    **dict.fromkeys(("rtsp_transport", "stall_timeout", "max_retries", "segment", "live_queue",
                     "max_fps", "record", "retain", "max_disk", "live_log_size", "mqtt",
                     "http", "camera_size", "camera_fps", "camera_format", "mirror"),
                    frozenset({LIVE})),
}

# option dest -> (settings class, field) for the options that are settings
_LIVE_FIELDS = {"rtsp_transport": "transport", "segment": "segment_minutes",
                "live_queue": "queue_size"}
SETTINGS: dict[str, tuple[type, str]] = {
    **{f.name: (JobConfig, f.name) for f in dataclasses.fields(JobConfig) if f.name != "postprocess"},
    **{f.name: (PostprocessConfig, f.name) for f in dataclasses.fields(PostprocessConfig)},
    **{dest: (LiveConfig, name) for dest, name in
       (*_LIVE_FIELDS.items(), *((f.name, f.name) for f in dataclasses.fields(LiveConfig)
                                 if f.name not in _LIVE_FIELDS.values()))},
}
# what a live run writes: results() writes nothing and refuses them
WRITTEN = frozenset({"segment", "record", "retain", "max_disk", "live_log_size"})


def _api_form(dest: str) -> str | None:
    if dest in WRITTEN or dest not in SETTINGS:
        return None
    owner, name = SETTINGS[dest]
    if owner is PostprocessConfig:
        return f"JobConfig.postprocess.{name}"
    return f"JobConfig.{name}" if owner is JobConfig else f"results(live=LiveConfig.{name})"


# option dest -> how the Python API takes it (None: it has no such thing)
API: dict[str, str | None] = {
    **{dest: _api_form(dest) for dest in OPTION_MODES},
    "input": "results(input) / run(input)", "outdir": "run(outdir)",
}


class Conflict(NamedTuple):
    """``option`` given together with a state of the others that makes it mean nothing."""

    option: str
    applies: Callable[[Mapping], bool]
    message: Callable[[Mapping], str]
    modes: frozenset[str] = ALL


CONFLICTS: tuple[Conflict, ...] = (
    Conflict("record", lambda v: not v["video"] and v["record"] != "none",
             lambda v: f"--record {v['record']} records a video: --no-video means --record none",
             frozenset({LIVE})),
    Conflict("track_memory", lambda v: not v["track"],
             lambda v: "--track-memory sets how long ids are kept: there are none with --no-track"),
    Conflict("preset", lambda v: not v["video"],
             lambda v: "--preset sets the video's encoder: nothing is encoded with --no-video"),
    Conflict("mirror", lambda v: v["record"] == "raw",
             lambda v: "--mirror flips what is processed, but --record raw copies the camera's "
                       "unflipped packets: its keypoints would not match", frozenset({LIVE})),
    *(Conflict(dest, lambda v: bool(v.get("cluster")),
               lambda v, dest=dest: f"--{dest.replace('_', '-')} is for batches on this machine, "
                                    "not with --cluster", frozenset({BATCH}))
      for dest in ("preview", "files_in_flight", "show")),
)


def given(args: argparse.Namespace, parser: argparse.ArgumentParser, dest: str) -> bool:
    """Whether ``dest`` was set on the command line (to other than its default)."""
    return getattr(args, dest) != parser.get_default(dest)


def check_options(args: argparse.Namespace, parser: argparse.ArgumentParser, mode: str) -> None:
    """Every option given on the command line means something in ``mode``.

    Args:
        args: The parsed options.
        parser: The parser, with the config file's values as its defaults: a
            config file serves several modes, so only the command line's
            options are checked against the mode.
        mode: One of ``MODES``.

    Raises:
        UsageError: One line naming the first option that means nothing here.
    """
    values = vars(args)
    for action in parser._actions:
        if action.dest in OPTION_MODES and given(args, parser, action.dest):
            _check_mode(action.dest, mode, _flag(action))
    _check_conflicts(values, mode, lambda dest: given(args, parser, dest))


def check_settings(mode: str, config: JobConfig, live: LiveConfig | None = None, *,
                   writes: bool = True) -> None:
    """Settings made in Python (other than their defaults) mean something in ``mode``.

    Args:
        mode: One of ``MODES``.
        config: The run's settings.
        live: The live settings, if any were given.
        writes: Whether the run writes files (``results()`` writes nothing).

    Raises:
        UsageError: One line naming the first setting that means nothing here.
    """
    objects = {JobConfig: config, PostprocessConfig: config.postprocess,
               LiveConfig: live if live is not None else LiveConfig()}
    values = {dest: getattr(objects[owner], name) for dest, (owner, name) in SETTINGS.items()}
    defaults = {dest: _default(owner, name) for dest, (owner, name) in SETTINGS.items()}
    changed = [dest for dest in SETTINGS if values[dest] != defaults[dest]]
    for dest in changed:
        owner, name = SETTINGS[dest]
        flag = flag_of(owner, name)
        if dest in WRITTEN and not writes and mode in OPTION_MODES[dest]:
            raise UsageError(f"{flag} (LiveConfig.{name}) is for live runs that write files; "
                             "results() writes nothing")
        _check_mode(dest, mode, flag, f" (LiveConfig.{name})" if owner is LiveConfig else "")
    _check_conflicts(values, mode, lambda dest: dest in changed)


def markdown_table() -> str:
    """The "Options by mode" table of the docs' options reference, one row per option."""
    rows = ["| option | file | image | batch | live | Python API |", "|---|---|---|---|---|---|"]
    for dest, modes in OPTION_MODES.items():
        cells = " | ".join("yes" if mode in modes else "no" for mode in MODES)
        how = API[dest]
        rows.append(f"| `{_flag_of_dest(dest)}` | {cells} | {f'`{how}`' if how else 'none'} |")
    return "\n".join(rows)


def _check_mode(dest: str, mode: str, flag: str, note: str = "") -> None:
    modes = OPTION_MODES[dest]
    if mode not in modes:
        names = [_PLURAL[m] for m in MODES if m in modes]
        where = " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]
        raise UsageError(f"{flag} is for {where}, not {_NAMES[mode]}{note}")


def _check_conflicts(values: Mapping, mode: str, given_: Callable[[str], bool]) -> None:
    for conflict in CONFLICTS:
        if mode in conflict.modes and given_(conflict.option) and conflict.applies(values):
            raise UsageError(conflict.message(values))


def _default(owner: type, name: str):
    field = owner.__dataclass_fields__[name]
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _flag_of_dest(dest: str) -> str:
    if dest in SETTINGS:
        return flag_of(*SETTINGS[dest])
    return {"input": "INPUT", "outdir": "-o/--outdir"}.get(dest, "--" + dest.replace("_", "-"))


def _flag(action: argparse.Action) -> str:
    longs = [o for o in action.option_strings if o.startswith("--")]
    return longs[0] if longs else action.dest
