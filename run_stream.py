"""posestream command line: pose estimation over a file, a batch of files, or live streams."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

# importing stages sets OPENBLAS_NUM_THREADS=1 before numpy loads (stages/__init__.py)
from stages.cli.parser import build_parser

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "size_main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2  # argparse exits 2 on usage errors too


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    The output files never depend on stdout: a reader that goes away
    (``| head -1``) or a full device only ends the printing, and the status
    follows ``stages.display.stdout.stdout_status`` (141 for a closed pipe,
    quietly, unless the run itself failed or was stopped).
    """
    from stages.display.stdout import guarded_stdout, stdout_error_line, stdout_status

    with guarded_stdout() as stdout:
        code = _main(argv)
    if (line := stdout_error_line(stdout.error)) is not None:
        print(f"posestream: error: {line}", file=sys.stderr)
    return stdout_status(code, stdout.error)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None:
        from stages.cli.config_file import config_defaults
        try:
            parser.set_defaults(**config_defaults(parser, args.config))
        except ValueError as exc:
            print(f"posestream: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        args = parser.parse_args(argv)
    if args.show:  # before PyAV: its X libraries would take the place of Qt's (stages.display.window)
        import cv2  # noqa: F401
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # also when a host program set up logging first
    from stages.sources.credentials import CredentialFilter
    for handler in logging.getLogger().handlers:
        handler.addFilter(CredentialFilter())  # no user:pass@ in any log line, whoever logs it
    from pipeline.signals import StopOnSignals
    from stages.errors import UsageError

    stop = StopOnSignals()  # every run ends within 2 s of SIGINT/SIGTERM
    try:
        with stop:
            return _run(args, stop, parser)
    except KeyboardInterrupt:
        print("posestream: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:  # an option that means nothing in this mode
        print(f"posestream: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # one clear line for the user; tracebacks with --debug
        if stop.received is not None:  # e.g. an open cut short by the signal
            print(f"posestream: interrupted by {signal.Signals(stop.received).name}", file=sys.stderr)
            return 128 + stop.received
        if args.debug:
            raise
        print(f"posestream: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace, stop, parser: argparse.ArgumentParser) -> int:
    from stages.errors import InputError
    from stages.sources.probe import is_image
    from stages.sources.spec import is_live

    from stages.options import BATCH, FILE, IMAGE, LIVE, check_options

    config = _job_config(args)
    _check_run_options(args)
    specs = [(spec, None) for spec in args.input]
    specs += _read_sources(args.sources) if args.sources else []
    live = [spec for spec, _ in specs if is_live(spec)]
    if live and len(live) != len(specs):
        raise InputError("live sources and files cannot be mixed in one run")
    paths = [spec for spec, _ in specs]
    if live:
        mode = LIVE
    elif args.list or args.cluster or len(paths) > 1 or any(_is_many(p) for p in paths):
        mode = BATCH
    else:
        mode = IMAGE if paths and is_image(paths[0]) else FILE
    check_options(args, parser, mode)  # a config file's keys are defaults for every mode
    if mode == LIVE:
        return _run_live(args, stop, config, specs)
    if mode == BATCH:
        return _run_batch(args, stop, config, paths)
    source = Path(paths[0]) if paths else _make_sample(args.outdir)
    return _run_file(args, stop, config, source)


def _check_run_options(args: argparse.Namespace) -> None:
    """Options outside JobConfig, checked before any model loads or output is made."""
    from stages.errors import InputError
    from stages.settings import MAX_FILES_IN_FLIGHT

    if not 1 <= args.files_in_flight <= MAX_FILES_IN_FLIGHT:
        raise InputError(f"--files-in-flight {args.files_in_flight}: must be 1 to {MAX_FILES_IN_FLIGHT}")
    _check_outdir(args.outdir)
    if args.summary_json is not None:
        _check_writable(args.summary_json, "--summary-json")


def _check_writable(path: Path, option: str) -> None:
    """``path`` can be written as what is there asks (``stages.outputs.target``): a new
    path or a regular file in a folder that takes files, a link to one, a FIFO or a device.

    Raises:
        OutputError: One line naming the option, the path and what is wrong.
    """
    from stages.errors import OutputError
    from stages.outputs.target import check_target

    try:
        check_target(path)
    except OutputError as exc:
        raise OutputError(f"{option} {exc}") from None


def _check_outdir(path: Path) -> None:
    """``-o`` is a folder (a link to one is followed) or not there yet.

    Raises:
        OutputError: One line naming it and what is there instead.
    """
    from stages.errors import OutputError
    from stages.outputs.target import node_kind

    kind = node_kind(path)
    if kind not in (None, "a folder"):
        raise OutputError(f"-o {path}: is {kind}, not a folder")


def _is_many(spec: str) -> bool:
    import glob
    return glob.has_magic(spec) or Path(spec).is_dir()


def _run_batch(args: argparse.Namespace, stop, config, paths: list[str]) -> int:
    from stages.display.console import BatchProgress, batch_progress
    from stages.sources.inputs import expand_inputs

    items = expand_inputs(paths, args.list)
    engine = None
    if args.cluster:
        from stages.jobs.cluster import run_on_cluster
        with BatchProgress(len(items)) as progress:
            reports = run_on_cluster(args.cluster, items, args.outdir, config, force=args.force,
                                     on_file=progress.file_done)
        stop_signal = None
    else:
        from stages.jobs.batch import BatchJob
        job = BatchJob(items, args.outdir, config, lanes=args.files_in_flight, force=args.force)
        with (batch_progress(items, job.reports, config) as progress, _preview(args) as preview,
              _show(args) as window):
            _cancel_on_quit(window, job)
            result, stop_signal = _until_stopped(stop, job, on_result=progress.frame_done,
                                                 on_file=lambda r: progress.file_done(r.as_dict()),
                                                 views=_views(preview, window))
            stop_signal = stop_signal or _quit_by_user(window)
        reports = {key: r.as_dict() for key, r in result.items()}
        engine = job.engine
    code = _finish_batch(args, config, items, reports, progress.elapsed, stop_signal, engine)
    return _exit_status(stop, code)


def _finish_batch(args: argparse.Namespace, config, items, reports: dict, seconds: float,
                  stop_signal: int | None, engine) -> int:
    """Write a batch's records (batch-summary.json, --summary-json, the tables, the COCO
    dataset, the report), then print them: the files never wait on stdout; return the exit code."""
    from stages.display.console import batch_summary, print_batch_table, write_summary_json
    from stages.outputs.tables import table_inputs

    rows = sorted(reports.values(), key=lambda r: r["input"])
    summary = batch_summary(rows, seconds)
    summary_path = Path(args.outdir) / "batch-summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)  # a batch stopped before any output
    write_summary_json(summary_path, summary)
    if args.summary_json is not None:  # the same table where the user asked for it
        write_summary_json(args.summary_json, summary)
    tables, table_paths = _write_tables(args.outdir, config, items, table_inputs(items, reports))
    dataset = None
    unfinished = sum(r["status"] in ("interrupted", "pending") for r in rows)
    if not unfinished and "coco" in config.formats:  # a stopped batch leaves the previous one
        from stages.outputs.coco_dataset import write_for_batch
        dataset = write_for_batch(args.outdir, items, reports).path
    report = _write_report(args.outdir, table_paths, summary, stopped=stop_signal is not None)
    if engine is not None:
        print(f"engine: {engine}")
    print_batch_table(rows, summary["totals"])
    print(f"summary: {summary_path}")
    kept = [path for r in rows for path in r.get("partial", [])]
    if kept:  # nothing of theirs is under a final name
        print(f"partial: {len(kept)} input(s) not finished, their work kept in: {', '.join(kept)}; "
              "the same command resumes them")
    for line in tables:
        print(line)
    if dataset is not None:
        print(f"coco dataset: {dataset}")
    elif "coco" in config.formats:
        print(f"coco dataset: not written, {unfinished} input(s) not finished; the previous one stays")
    for line in report:
        print(line)
    if stop_signal == QUIT:  # the user closed the window: as a stop, but meant
        return EXIT_OK
    if stop_signal:
        return 128 + stop_signal
    return EXIT_ERROR if any(r["status"] == "failed" for r in rows) else EXIT_OK


def _write_tables(outdir: Path, config, items, inputs) -> tuple[list[str], object]:
    """Write a run's tables (``stages.outputs.tables``) of the ``inputs`` that finished;
    return the lines that tell where they went, or why they were not written, and
    their ``TablePaths`` (None when not written)."""
    from stages.outputs.tables import TablePaths, write_tables

    if "jsonl" not in config.formats:
        return ["tables: not written: they are made from the .jsonl logs (--format jsonl)"], None
    if not inputs:
        return ["tables: not written: no input finished"], None
    paths = TablePaths.of(outdir, items)
    counts = write_tables(paths, inputs)
    written = [paths.keypoints, paths.frames, paths.people]
    if counts.parquet:
        written.append(paths.parquet)
    lines = ["tables: " + ", ".join(map(str, written))]
    if not config.track:
        lines.append(f"{paths.people.name}: no rows: without tracking (--no-track) no one "
                     "is followed from frame to frame")
    return lines, paths


def _write_report(outdir: Path, tables, summary: dict, *, stopped: bool = False) -> list[str]:
    """Write the run's report.html (``stages.outputs.report``) from its ``tables`` (None:
    not written, and no report either) and ``summary``; return the line that says where
    it went, or why it was not written. A ``stopped`` run has none (drawing can take
    seconds, and a stopped run ends within 2 s): the report of the tables it replaced goes."""
    if tables is None:
        return []
    from stages.outputs.report import REPORT_NAME, write_report

    if stopped:
        from stages.outputs.atomic import remove_quietly

        remove_quietly(Path(outdir) / REPORT_NAME)
        return [f"report: not written: the run was stopped; posestream-report {outdir} makes "
                "it from the tables"]

    try:
        return [f"report: {write_report(outdir, tables=tables, summary=summary)}"]
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("matplotlib"):
            raise
        return ["report: not written: it draws its plots with matplotlib, which is not installed"]


def _file_records(args: argparse.Namespace, config, source: Path, summary) -> list[str]:
    """Write a file run's records (its tables, its COCO dataset, its report), if it
    finished; return the lines that say so."""
    from stages.outputs.tables import TableInput
    from stages.sources.inputs import BatchItem

    if summary.interrupted:
        return []
    item = BatchItem(Path(source), Path(Path(source).name))
    logs = [Path(p) for p in summary.outputs if str(p).endswith(".jsonl")]
    lines, tables = _write_tables(args.outdir, config, [item],
                                  [TableInput(os.fspath(source), logs[0])] if logs else [])
    if "coco" in config.formats:
        from stages.outputs.coco_dataset import write_for_batch
        report = {"status": "done", "outputs": [str(p) for p in summary.outputs]}
        dataset = write_for_batch(args.outdir, [item], {item.key: report}).path
        lines.append(f"coco dataset: {dataset}")
    return lines + _write_report(args.outdir, tables, _file_summary(summary))


def _job_config(args: argparse.Namespace):
    from stages.settings import JobConfig, PostprocessConfig

    return JobConfig(
        resolution=args.resolution, workers=args.workers,
        queue_size=args.queue_size, backend=args.backend, device=args.device, model=args.model,
        precision=args.precision, batch=args.batch, batch_timeout=args.batch_timeout,
        graph=args.graph, postprocess=_postprocess_config(PostprocessConfig, args),
        preset=args.preset, formats=args.formats, track=args.track,
        track_memory=args.track_memory, audio=args.audio,
        video=args.video, frame_step=args.frame_step, start=args.start, end=args.end,
        video_stream=args.video_stream)


def _preview(args: argparse.Namespace, sources: tuple[str, ...] = (), status=None):
    """The browser preview server asked for with --preview, or a no-op context."""
    import contextlib

    if not args.preview:
        return contextlib.nullcontext()
    from stages.serve.preview import PreviewServer, parse_bind

    host, port = parse_bind(args.preview)
    server = PreviewServer(host, port, sources=sources, status=status)
    print(f"preview: {server.url}  kiosk: {server.url}?kiosk=1", file=sys.stderr)
    return server


QUIT = -1  # stands for a stop signal when the user quit the --show window


def _show(args: argparse.Namespace, *, per_source: bool = False):
    """The local window asked for with --show (its display checked now), or a no-op context."""
    import contextlib

    if not args.show:
        return contextlib.nullcontext()
    from stages.display.window import ShowWindow

    return ShowWindow(fullscreen=args.show == "fullscreen", per_source=per_source)


def _cancel_on_quit(window, job) -> None:
    """The user's quit in the --show window cancels ``job``."""
    if window is not None:
        window.attach(job.cancel)


def _views(preview, window):
    """What a job's run shows: the steps of the --preview server and the --show window."""
    from stages.jobs.base import Views

    return Views(preview=preview.publish if preview is not None else None,
                 show=window.show if window is not None else None)


def _quit_by_user(window) -> int | None:
    """``QUIT`` if the user ended the run from the --show window."""
    return QUIT if window is not None and window.quit else None


def _serve_status(args: argparse.Namespace, job, stack):
    """Start --preview and --http for a live ``job`` (the preview serves the status routes too);
    return the preview server, or None."""
    from stages.serve.server import parse_bind
    from stages.serve.status import LiveStatus, StatusServer

    status = LiveStatus.of(job)
    preview = None
    if args.preview:
        preview = stack.enter_context(_preview(args, tuple(job.names), status))
    if args.http:
        host, port = parse_bind(args.http, "--http")
        server = stack.enter_context(StatusServer(host, port, status=status,
                                                  preview=preview.url if preview else None))
        print(f"status: {server.url} (/healthz, /metrics, /events)", file=sys.stderr)
    return preview


def _run_file(args: argparse.Namespace, stop, config, source: Path) -> int:
    with _show(args) as window, _preview(args) as preview:
        return _run_file_with(args, stop, config, source, preview, window)


def _run_file_with(args: argparse.Namespace, stop, config, source: Path, preview, window) -> int:
    from stages.display.console import FileProgress
    from stages.jobs.file_job import FileJob
    from stages.sources.probe import is_image

    job = FileJob(source, args.outdir, config)
    _cancel_on_quit(window, job)
    progress: list[FileProgress] = []

    def started(info) -> None:
        progress.append(FileProgress(Path(source).name, info.frames).__enter__())

    try:
        summary, stop_signal = _until_stopped(stop, job, on_result=lambda r: progress[0].advance(r),
                                              on_start=started, views=_views(preview, window))
    finally:
        for bar in progress:
            bar.__exit__(None, None, None)
    records = _file_records(args, config, source, summary)
    _report(summary, args.summary_json)
    for line in records:
        print(line)
    if summary.interrupted:
        print(_partial_line(summary))  # the last line says what the outputs hold
    if window is not None and is_image(source) and not summary.interrupted:
        print("showing the picture: q or Esc in its window, or closing it, ends", file=sys.stderr)
        stop.attach(window.stop)
        window.wait()  # a still picture stays until the user is done with it
    if summary.interrupted and not _quit_by_user(window):
        return _exit_status(stop, 128 + (stop_signal or signal.SIGINT))
    return _exit_status(stop, EXIT_OK)


def _exit_status(stop, code: int) -> int:
    """The exit code of a file or batch run: 128 + N once stop signal N came, at any
    moment (also after the last frame, while the run finished its records), else ``code``."""
    return 128 + stop.received if stop.received is not None else code


def _run_live(args: argparse.Namespace, stop, config, specs: list[tuple[str, str | None]]) -> int:
    import contextlib

    from stages.display.dashboard import LiveDashboard
    from stages.jobs.live import LiveJob

    if not args.verbose and not args.debug:
        logging.getLogger().setLevel(logging.INFO)  # operators want every connection event
    job = LiveJob(specs, args.outdir, config, _live_config(args))
    try:
        with contextlib.ExitStack() as stack:
            window = stack.enter_context(_show(args, per_source=len(specs) > 1))
            _cancel_on_quit(window, job)
            preview = _serve_status(args, job, stack)
            stack.enter_context(LiveDashboard(job.snapshot))
            _, stop_signal = _until_stopped(stop, job, views=_views(preview, window))
    finally:
        _report_live(job, args.summary_json)
    return 128 + stop_signal if stop_signal else EXIT_OK


def _live_config(args: argparse.Namespace):
    from stages.settings import LiveConfig

    return LiveConfig(transport=args.rtsp_transport, stall_timeout=args.stall_timeout,
                      max_retries=args.max_retries, segment_minutes=args.segment,
                      queue_size=args.live_queue, record="none" if not args.video else args.record,
                      retain=args.retain, max_disk=args.max_disk,
                      live_log_size=args.live_log_size, mqtt=args.mqtt, mirror=args.mirror,
                      camera_fps=args.camera_fps, camera_size=args.camera_size,
                      camera_format=args.camera_format, max_fps=args.max_fps)


def _until_stopped(stop, job, **callbacks):
    """Run ``job``, which a stop signal cancels; return (its result, the signal or None)."""
    stop.attach(job.cancel)
    return job.run(**callbacks), stop.received


def _check_source_line(path: Path, line: str, words: list[str]) -> None:
    """Refuse, masked, a URL that white space or a '#' cut in two (its password would show)."""
    from stages.errors import InputError
    from stages.sources.credentials import mask_url

    first = line.split()[0] if line.split() else ""
    cut = "://" in first and ("#" in first or (len(words) == 2 and "@" in words[1]))
    if cut:
        raise InputError(f"--sources {path}: {mask_url(line.strip())}: white space or a '#' "
                         "inside a URL; percent-encode them (%20, %23)")


def _read_sources(path: Path) -> list[tuple[str, str | None]]:
    from stages.errors import InputError

    try:  # a BOM some editors put first is not part of the first spec
        lines = path.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise InputError(f"--sources {path}: cannot read ({exc.strerror})") from None
    specs = []
    for line in lines:
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        _check_source_line(path, line, words)
        if len(words) > 2:
            raise InputError(f"--sources {path}: expected 'SPEC [NAME]', got {len(words)} words")
        if words:
            specs.append((words[0], words[1] if len(words) == 2 else None))
    if not specs:
        raise InputError(f"--sources {path}: no source in the file")
    return specs


def _postprocess_config(cls, args):
    """PostprocessConfig from the flags; its ValueError names the field, reworded as the flag."""
    try:
        return cls(resize_out_ratio=args.resize_out_ratio, smooth_kernel=args.smooth_kernel,
                   smooth_sigma=args.smooth_sigma, refine=args.refine)
    except ValueError as exc:
        from stages.errors import InputError
        text = str(exc)
        for field in ("resize_out_ratio", "smooth_kernel", "smooth_sigma"):
            text = text.replace(field, "--" + field.replace("_", "-"))
        raise InputError(text) from None


def _make_sample(outdir: Path) -> Path:
    from stages.outputs.sample import make_sample_clip

    path = outdir / "sample" / "people.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_sample_clip(path)
        print(f"no input given: made a sample clip with people at {path}", file=sys.stderr)
    return path


def _report_live(job, summary_json: Path | None) -> None:
    """Write the live run's summary JSON, then print its table (the file never waits on stdout)."""
    from stages.display.console import print_summary, write_summary_json

    snapshot = job.snapshot()
    if summary_json is not None:
        write_summary_json(summary_json, snapshot)
    print_summary(snapshot)
    print(f"outputs under {job.outdir}/<source>/")
    if job.engine is not None:
        print(f"engine: {job.engine}")


def _report(summary, summary_json: Path | None) -> None:
    """Write a file run's summary JSON, then print the run (the file never waits on stdout)."""
    from stages.display.console import print_summary, write_summary_json

    record = _file_summary(summary)
    state, outputs, stages = record["state"], record["outputs"], record["stages"]
    if summary_json is not None:
        write_summary_json(summary_json, record)
    note = " (input truncated: read up to its last decodable frame)" if summary.truncated else ""
    if summary.frames_lost:
        note += f" (input damaged: {summary.frames_lost} undecodable frames skipped)"
    frames = "frame" if summary.frames_read == 1 else "frames"
    if summary.resumed_from:
        note += f" (resumed: the first {summary.resumed_from} frames were done by an earlier run)"
    print(f"{state}: {summary.input}: {summary.frames_read} {frames} read, "
          f"{summary.frames_written} written in {summary.seconds:.1f} s "
          f"({summary.fps:.1f} FPS){note}")
    for path in outputs:
        print(f"  {path}")
    if summary.engine is not None:
        print(f"engine: {summary.engine}")
    if sys.stdout.isatty():
        print_summary({"stages": stages})


def _partial_line(summary) -> str:
    """The last line of an interrupted file run: what its outputs hold and what a rerun does."""
    done = summary.frames_done or 0
    of = f" of {summary.expected}" if summary.expected else ""
    if summary.outputs and not summary.kept_aside:
        held = f"partial: the outputs hold {done}{of} frames, not the whole input"
    elif summary.partial is not None:
        held = (f"partial: {done}{of} frames done, kept in {summary.partial}; the outputs "
                "there before this run stay")
    elif summary.outputs:  # an image's, kept aside
        held = f"partial: kept aside as {', '.join(map(str, summary.outputs))}"
    else:
        held = f"partial: {done}{of} frames done, nothing kept"
    if summary.checkpoint_frames:
        return held + f"; the same command resumes after its first {summary.checkpoint_frames} frames"
    return held + "; the same command starts over"


def _file_summary(summary) -> dict:
    """A file run's summary, as --summary-json writes it."""
    return {"input": os.fspath(summary.input),  # a cut run made fewer outputs: those that exist
            "outputs": [path for path in summary.outputs if Path(path).exists()],
            "state": "interrupted" if summary.interrupted else "done",
            "partial": summary.interrupted, "frames_done": summary.frames_done,
            "frames_expected": summary.expected, "frames_resumed_from": summary.resumed_from,
            "frames_processed": summary.frames_processed,
            "work": os.fspath(summary.partial) if summary.partial is not None else None,
            "resumes_after": summary.checkpoint_frames if summary.partial is not None else None,
            "frames_read": summary.frames_read, "frames_written": summary.frames_written,
            "truncated": summary.truncated, "frames_lost": summary.frames_lost,
            "seconds": summary.seconds, "fps": summary.fps,
            "engine": summary.engine.as_dict() if summary.engine is not None else None,
            "stages": summary.statistics.stage_rows(summary.seconds) if summary.statistics else []}


def size_main(argv: list[str] | None = None) -> int:
    """``posestream-size``: measure what this machine takes (``stages.jobs.sizing``);
    return the process exit code. The JSON file is written before anything is printed."""
    from stages.cli import sizing as cli
    from stages.errors import InputError
    from stages.version import version

    args = cli.build_parser().parse_args(argv)
    if args.version:
        print(f"posestream-size {version()}")
        return EXIT_OK
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli.check(args)
        engines, left_out = cli.engines(args.engines)
    except InputError as exc:
        print(f"posestream-size: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sizing, facts = cli.measure(args, engines, left_out, on_measured=lambda m: print(
            cli.progress_line(m), file=sys.stderr, flush=True))
        if args.json is not None:
            cli.write_json(args.json, sizing, **facts)
    except KeyboardInterrupt:
        print("posestream-size: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, as posestream says it
        print(f"posestream-size: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    print(cli.report(sizing, facts), end="")
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    """The error as one line, any URL's credentials masked (whoever raised it)."""
    from stages.sources.credentials import mask_credentials

    text = str(exc).strip() or type(exc).__name__
    return mask_credentials(" ".join(text.split()))


if __name__ == "__main__":
    sys.exit(main())
