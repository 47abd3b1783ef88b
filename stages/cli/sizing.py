"""``posestream-size``: its options, and its report as text and JSON.

The measuring is ``stages.jobs.sizing``'s; here the command's options are
read, the engines chosen, and the figures laid out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from models.resolution import DEFAULT_RESOLUTION, parse_resolution
from stages.errors import InputError
from stages.jobs.sizing import (BUSY_ELSEWHERE, SIZES, EngineChoice, Measurement, Row, Sizing,
                                engines_present, machine_facts, measure_machine)
from stages.version import version

DEFAULTS = {"camera_fps": 5.0, "video_fps": 25.0, "headroom": 0.2, "seconds": 2.5}


def build_parser() -> argparse.ArgumentParser:
    """The options of ``posestream-size``."""
    p = argparse.ArgumentParser(
        prog="posestream-size",
        description="Measure this machine: how many cameras it takes at an FPS, and how many "
                    "hours of 720p and 1080p video it processes per hour, with and without the "
                    "annotated video, for each engine present. Runs the real pipeline (decode, "
                    "network, drawing, encoding) on a generated clip with people, a few seconds "
                    "per figure: about 1-2 minutes in all on 2 cores.")
    p.add_argument("--camera-fps", type=float, default=DEFAULTS["camera_fps"], metavar="F",
                   help="frames per second each camera sends, all of them processed "
                        f"(default: {DEFAULTS['camera_fps']:g})")
    p.add_argument("--video-fps", type=float, default=DEFAULTS["video_fps"], metavar="F",
                   help=f"frame rate of the recordings (default: {DEFAULTS['video_fps']:g})")
    p.add_argument("--headroom", type=float, default=DEFAULTS["headroom"], metavar="SHARE",
                   help="share of the live pipeline's measured rate the cameras leave free, "
                        f"0 to 0.9 (default: {DEFAULTS['headroom']:g})")
    p.add_argument("--resolution", default="x".join(map(str, DEFAULT_RESOLUTION)), metavar="WxH",
                   help="network input size, as posestream's --resolution (default: "
                        f"{'x'.join(map(str, DEFAULT_RESOLUTION))})")
    p.add_argument("--sizes", default=",".join(SIZES), metavar="LIST",
                   help=f"picture sizes to measure, of {', '.join(SIZES)} (default: all)")
    p.add_argument("--engines", metavar="LIST",
                   help="engines to measure, BACKEND:PRECISION[:DEVICE] comma-separated, e.g. "
                        "openvino:int8,tf:f32 (default: every one present)")
    p.add_argument("--seconds", type=float, default=DEFAULTS["seconds"], metavar="S",
                   help="length of each measurement after its warm-up, 0.5 to 60 "
                        f"(default: {DEFAULTS['seconds']:g})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    p.add_argument("--version", action="store_true", help="print the program's version and exit")
    return p


def check(args: argparse.Namespace) -> None:
    """Refuse values out of their bounds, with one line naming the option.

    Raises:
        InputError: A value out of bounds or not understood.
    """
    parse_resolution(args.resolution)
    for option, value, low, high in (("--camera-fps", args.camera_fps, 0.01, 1000),
                                     ("--video-fps", args.video_fps, 0.01, 1000),
                                     ("--headroom", args.headroom, 0.0, 0.9),
                                     ("--seconds", args.seconds, 0.5, 60)):
        if not low <= value <= high:
            raise InputError(f"{option} {value:g}: expected {low:g} to {high:g}")
    sizes(args.sizes)
    if args.json is not None and not os.access(args.json.parent, os.W_OK):
        raise InputError(f"--json {args.json}: its folder does not exist or cannot be written")


def sizes(text: str) -> list[str]:
    """``--sizes``: known sizes, in the order given.

    Raises:
        InputError: An unknown or repeated size, or none.
    """
    found = [s.strip().lower() for s in text.split(",") if s.strip()]
    wrong = [s for s in found if s not in SIZES]
    if wrong or not found or len(set(found)) != len(found):
        raise InputError(f"--sizes {text!r}: expected some of {', '.join(SIZES)}, each once")
    return found


def engines(text: str | None) -> tuple[list[EngineChoice], list[str]]:
    """``--engines``: the engines asked for (default: ``engines_present()``), and
    the lines saying which present ones were left out and why.

    Raises:
        InputError: An engine not written BACKEND:PRECISION[:DEVICE].
    """
    if text is None:
        return engines_present()
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        words = part.split(":")
        if len(words) not in (2, 3) or not all(words):
            raise InputError(f"--engines {part!r}: expected BACKEND:PRECISION[:DEVICE], "
                             "e.g. openvino:int8")
        chosen.append(EngineChoice(*words))
    if not chosen:
        raise InputError("--engines: name at least one engine, e.g. openvino:f32")
    return chosen, []


def measure(args: argparse.Namespace, engines_: list[EngineChoice], left_out: list[str],
            on_measured: Callable[[Measurement], None] | None = None) -> tuple[Sizing, dict]:
    """Measure ``engines_`` as ``args`` say; the figures, and the facts the report and the
    JSON file hold beside them."""
    started = time.monotonic()
    measured = measure_machine(engines_, resolution=parse_resolution(args.resolution),
                               sizes=sizes(args.sizes), seconds=args.seconds,
                               on_measured=on_measured)
    sizing = Sizing(measurements=tuple(measured), camera_fps=args.camera_fps,
                    video_fps=args.video_fps, headroom=args.headroom)
    facts = {"posestream_version": version(), "machine": machine_facts(),
             "resolution": args.resolution, "seconds_per_run": args.seconds,
             "seconds": round(time.monotonic() - started, 1), "left_out": left_out}
    return sizing, facts


def report(sizing: Sizing, facts: dict) -> str:
    """The figures as text: cameras, hours per hour, and the rates measured (``facts``:
    as ``measure`` gives them)."""
    head = ["engine"] + [f"{s}{' --no-video' if not v else ''}"
                         for s in sizing.sizes() for v in (True, False)]
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    machine = facts["machine"]
    lines = [
        f"posestream-size {facts['posestream_version']}: this machine, measured end to end "
        f"(decode, network at {facts['resolution']}, people, tracking, drawing, encoding) on a "
        "clip with two people",
        f"machine: {machine['cores']} cores, {machine['cpu']}; CPU flags: "
        f"{' '.join(machine['flags']) or 'no AVX2'}"
        + (f"; OpenVINO limited to {limit} (ONEDNN_MAX_CPU_ISA)" if limit else ""),
        f"took {facts['seconds']:.0f} s: {len(sizing.measurements)} runs of "
        f"{facts['seconds_per_run']:g} s after a warm-up",
        *(f"left out: {why}" for why in facts["left_out"]),
        *_busy(sizing.elsewhere()),
        "",
        f"cameras at {sizing.camera_fps:g} FPS each (live streams: one model copy on all cores; "
        f"using {100 * (1 - sizing.headroom):.0f}% of its measured rate)",
        *_table(head, _cells(sizing.camera_rows(), "{:.0f}")),
        "",
        f"hours of {sizing.video_fps:g} FPS video processed per hour (files and batches: "
        "one model copy per core)",
        *_table(head, _cells(sizing.hour_rows(), "{:.2f}")),
        "",
        "measured, frames per second end to end (first result after N s: model loading)",
        *_table(["engine", "arrangement", "workers"] + head[1:] + ["first result after"],
                _measured(sizing)),
    ]
    return "\n".join(lines) + "\n"


def _busy(elsewhere: float | None) -> list[str]:
    """A warning when other programs took a share of the CPU that makes the figures low."""
    if elsewhere is None or elsewhere <= BUSY_ELSEWHERE:
        return []
    return [f"warning: other programs used {elsewhere:.0%} of the CPU while measuring: these "
            "figures are low; measure again when the machine is quiet"]


def _cells(rows: list[Row], spec: str) -> list[list[str]]:
    """One line per engine: its figure at each size, with and without the video."""
    by_engine: dict[str, list[str]] = {}
    for row in rows:
        cells = by_engine.setdefault(row.engine, [row.engine])
        cells += ["-" if x is None else spec.format(x) for x in (row.video, row.no_video)]
    return list(by_engine.values())


def _measured(sizing: Sizing) -> list[list[str]]:
    """One line per engine and arrangement: its rate at each size, with and without the video."""
    columns = [(size, video) for size in sizing.sizes() for video in (True, False)]
    groups: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in sizing.measurements:
        groups.setdefault((m.engine, m.mode, m.workers), []).append(m)
    rows = []
    for (engine, mode, workers), runs in groups.items():
        rate = {(m.size, m.video): f"{m.fps:.1f}" for m in runs}
        rows.append([engine, mode, str(workers)] + [rate.get(c, "-") for c in columns]
                    + [f"{max(m.load_seconds for m in runs):.1f} s"])
    return rows


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return ["  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [head, *rows]]


def progress_line(m: Measurement) -> str:
    """One measurement, as it is made."""
    return (f"posestream-size: {m.engine}, {m.mode}, {m.size}{'' if m.video else ' --no-video'}: "
            f"{m.fps:.1f} FPS ({m.frames} frames in {m.seconds:.1f} s)")


def write_json(path: Path, sizing: Sizing, **facts) -> None:
    """The figures, the measurements and ``facts`` as one JSON document at ``path``."""
    document = {**facts, **sizing.as_dict()}
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
