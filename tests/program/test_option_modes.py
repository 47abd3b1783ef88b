"""Every option in every mode: honoured, or rejected with one line and exit 2 (issue 12).

The table under test is ``stages.options.OPTION_MODES``; ``HONOURED`` below
says, per option, what it looks like when a mode honours it. A new parser
option without an entry in both fails ``test_every_option_has_a_decision``.

The matrix runs the real command line up to the job the mode builds (file,
batch or live job, or the cluster client), then the job's ``run`` is
replaced by a recorder that returns an empty result: what each option set is
read off the job, what its run was given to show and the servers started
(``stages.jobs.builder`` turns the job's settings into the one
pipeline of every mode; the leaves' own tests run those settings through it).
A few end-to-end runs at the bottom check the wiring through the builder for
real.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import run_stream
from stages import options as modes
from stages.errors import UsageError
from stages.jobs.base import JobSummary, Views
from stages.settings import JobConfig, LiveConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip

FAKE = "tests.support.fakes:ZeroBackend"
LAVFI = "lavfi:testsrc2=size=64x48:rate=5"
TINY_GRAPH = b"\x0a\x05\x0a\x03abc\x22\x02\x08\x1a"  # one NodeDef "abc", producer 26


@pytest.fixture
def media(tmp_path) -> dict:
    """The inputs of each mode, and files some options need."""
    make_test_clip(tmp_path / "a.mp4", frames=3, size=(64, 48))
    make_test_clip(tmp_path / "b.mp4", frames=3, size=(64, 48))
    make_test_clip(tmp_path / "c.mp4", frames=3, size=(64, 48))
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((48, 64, 3), 90, np.uint8))
    (tmp_path / "tiny.pb").write_bytes(TINY_GRAPH)
    (tmp_path / "more.txt").write_text(f"{tmp_path / 'c.mp4'}\n")
    (tmp_path / "opts.toml").write_text("queue-size = 5\n")
    inputs = {modes.FILE: [tmp_path / "a.mp4"], modes.IMAGE: [tmp_path / "photo.png"],
              modes.BATCH: [tmp_path / "a.mp4", tmp_path / "b.mp4"], modes.LIVE: [LAVFI]}
    return {"tmp": tmp_path, "inputs": inputs}


class Recorder:
    """Stands in for the jobs' ``run``, the cluster client and the --show window's opening:
    notes what ran, what its run was given to show and the servers started, returns
    nothing done."""

    def __init__(self, monkeypatch) -> None:
        from stages.jobs import cluster
        from stages.jobs.batch import BatchJob
        from stages.jobs.file_job import FileJob
        from stages.jobs.live import LiveJob

        from stages.serve.status import StatusServer

        self.job = None
        self.views: Views | None = None  # what the job's run was given to show
        self.served: list[StatusServer] = []  # --http and --preview servers, in start order
        self.cluster: dict | None = None
        recorder = self
        from stages.display.window import ShowWindow  # no window opens: the job's run is not run either
        monkeypatch.setattr(ShowWindow, "open", lambda window: window)
        start = StatusServer.start
        monkeypatch.setattr(StatusServer, "start",
                            lambda server: recorder.served.append(server) or start(server))

        def file_run(job, on_result=None, on_start=None, *, views=Views()):
            recorder.job, recorder.views = job, views
            return JobSummary(job.input, (), 0, 0, False, False, 0.0)

        def batch_run(job, on_result=None, on_file=None, *, views=Views()):
            recorder.job, recorder.views = job, views
            job.outdir.mkdir(parents=True, exist_ok=True)  # the batch's summary goes there
            return job.reports

        def live_run(job, on_result=None, *, views=Views()):
            recorder.job, recorder.views = job, views
            return job.stats

        def on_cluster(address, items, outdir, config, *, force=False, on_file=None):
            recorder.cluster = {"address": address, "items": items, "config": config}
            Path(outdir).mkdir(parents=True, exist_ok=True)
            return {}

        monkeypatch.setattr(FileJob, "run", file_run)
        monkeypatch.setattr(BatchJob, "run", batch_run)
        monkeypatch.setattr(LiveJob, "run", live_run)
        monkeypatch.setattr(cluster, "run_on_cluster", on_cluster)


def _config(field: str, value):
    return lambda job, ctx: getattr(job.config, field) == value


def _post(field: str, value):
    return lambda job, ctx: getattr(job.config.postprocess, field) == value


def _live(field: str, value):
    return lambda job, ctx: getattr(job.live, field) == value


def _root_level(level: int):
    return lambda job, ctx: logging.getLogger().level == level


def _inputs_seen(job, ctx) -> bool:
    if ctx["mode"] == modes.LIVE:
        return job.names == ["cam1"] if ctx["via_sources"] else len(job.names) == 1
    if ctx["mode"] == modes.BATCH:
        return len(job.reports) == 2
    return job.input == ctx["inputs"][0]


# dest -> (arguments that set it, with {tmp} for the test's folder; what honouring it looks like)
HONOURED = {
    "input": ([], _inputs_seen),
    "sources": (["--sources", "{tmp}/sources.txt"], _inputs_seen),
    "outdir": (["-o", "{tmp}/elsewhere"], lambda job, ctx: job.outdir == ctx["tmp"] / "elsewhere"),
    "resolution": (["--resolution", "64x48"], _config("resolution", (64, 48))),
    "device": (["--device", "auto"], _config("device", "auto")),
    "workers": (["--workers", "2"], _config("workers", 2)),
    "backend": (["--backend", "tests.support.fakes:Bf16Backend"], _config("backend", "tests.support.fakes:Bf16Backend")),
    "precision": (["--precision", "auto"], _config("precision", "auto")),
    "batch": (["--batch", "2"], _config("batch", 2)),
    "batch_timeout": (["--batch-timeout", "0.5"], _config("batch_timeout", 0.5)),
    "queue_size": (["--queue-size", "3"], _config("queue_size", 3)),
    "resize_out_ratio": (["--resize-out-ratio", "2"], _post("resize_out_ratio", 2.0)),
    "smooth_kernel": (["--smooth-kernel", "5"], _post("smooth_kernel", 5)),
    "smooth_sigma": (["--smooth-sigma", "2"], _post("smooth_sigma", 2.0)),
    "refine": (["--refine"], _post("refine", True)),
    "model": (["--model", "cmu"], _config("model", "cmu")),
    "graph": (["--graph", "{tmp}/tiny.pb"], lambda job, ctx: job.config.graph == ctx["tmp"] / "tiny.pb"),
    "formats": (["--format", "csv", "jsonl"], _config("formats", ("csv", "jsonl"))),
    "track": (["--no-track"], _config("track", False)),
    "track_memory": (["--track-memory", "3.5"], _config("track_memory", 3.5)),
    "video": (["--no-video"], _config("video", False)),
    "audio": (["--no-audio"], _config("audio", False)),
    "preset": (["--preset", "fast"], _config("preset", "fast")),
    "frame_step": (["--frame-step", "3"], _config("frame_step", 3)),
    "start": (["--start", "0:00.5"], _config("start", 0.5)),
    "end": (["--end", "2"], _config("end", 2.0)),
    "video_stream": (["--video-stream", "0"], _config("video_stream", 0)),
    "list": (["--list", "{tmp}/more.txt"], lambda job, ctx: len(job.reports) == len(ctx["inputs"]) + 1),
    "force": (["--force"], lambda job, ctx: job.todo == 2),  # both were done before
    "files_in_flight": (["--files-in-flight", "3"], lambda job, ctx: job.lanes == 3),
    "cluster": (["--cluster", "tcp://127.0.0.1:9"],
                lambda job, ctx: ctx["cluster"]["address"] == "tcp://127.0.0.1:9"),
    "rtsp_transport": (["--rtsp-transport", "udp"], _live("transport", "udp")),
    "stall_timeout": (["--stall-timeout", "2.5"], _live("stall_timeout", 2.5)),
    "max_retries": (["--max-retries", "3"], _live("max_retries", 3)),
    "segment": (["--segment", "1.5"], _live("segment_minutes", 1.5)),
    "live_queue": (["--live-queue", "2"], _live("queue_size", 2)),
    "max_fps": (["--max-fps", "2"], lambda job, ctx: job.live.max_fps == 2.0
                and all(s.max_fps == 2.0 for s in job._sources)),
    "record": (["--record", "none"], _live("record", "none")),  # raw needs packets, not lavfi
    "retain": (["--retain", "7d"], _live("retain", 7 * 86400)),
    "max_disk": (["--max-disk", "50G"], _live("max_disk", 50 << 30)),
    "live_log_size": (["--live-log-size", "1M"], _live("live_log_size", 1 << 20)),
    "mqtt": (["--mqtt", "mqtt://127.0.0.1:1/posestream"],
             _live("mqtt", "mqtt://127.0.0.1:1/posestream")),
    "camera_size": (["--camera-size", "640x480"], lambda job, ctx: job.live.camera_size == (640, 480)
                    and job._sources[0].camera == {"video_size": "640x480"}),
    "camera_fps": (["--camera-fps", "30"], lambda job, ctx: job.live.camera_fps == 30
                   and job._sources[0].camera == {"framerate": "30"}),
    "camera_format": (["--camera-format", "mjpeg"], lambda job, ctx: job.live.camera_format == "mjpeg"
                      and job._sources[0].camera == {"input_format": "mjpeg"}),
    "mirror": (["--mirror"], lambda job, ctx: job.live.mirror and job._sources[0].mirror),
    "http": (["--http", "127.0.0.1:0"], lambda job, ctx: any(
        server.label == "status" and server.status.monitors is job.monitors
        for server in ctx["served"])),
    "config": (["--config", "{tmp}/opts.toml"], _config("queue_size", 5)),
    "preview": (["--preview", "127.0.0.1:0"], lambda job, ctx: ctx["views"].preview is not None),
    "show": (["--show", "fullscreen"], lambda job, ctx: ctx["views"].show is not None
             and ctx["views"].show.__self__.fullscreen),
    "summary_json": (["--summary-json", "{tmp}/s.json"],
                     lambda job, ctx: json.loads((ctx["tmp"] / "s.json").read_text())),
    "verbose": (["-v"], lambda job, ctx: logging.getLogger().level <= logging.INFO),
    "debug": (["--debug"], _root_level(logging.DEBUG)),
}

# options honoured by cameras only: their live input is a camera (never opened here)
CAMERA_ONLY = {"camera_size", "camera_fps", "camera_format"}

# options that make a run of files a batch (they are honoured by becoming one)
MAKES_A_BATCH = {"list", "cluster"}


def test_every_option_has_a_decision():
    parser = run_stream.build_parser()
    dests = {a.dest for a in parser._actions if a.dest not in ("help", "version")}
    assert dests == set(modes.OPTION_MODES), "decide in stages.options.OPTION_MODES"
    assert dests == set(modes.API), "say how the API takes it in stages.options.API"
    assert dests == set(HONOURED), "say here what honouring it looks like"


CELLS = [(dest, mode) for dest in modes.OPTION_MODES for mode in modes.MODES]


@pytest.mark.parametrize("dest,mode", CELLS, ids=[f"{d}-{m}" for d, m in CELLS])
def test_option_in_mode_is_honoured_or_rejected(dest, mode, media, monkeypatch, capsys):
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)  # restored after
    tmp, inputs = media["tmp"], media["inputs"][mode]
    if mode == modes.LIVE and dest in CAMERA_ONLY:
        inputs = ["/dev/video0"]
    if dest == "force" and mode == modes.BATCH:  # outputs already complete, so --force shows
        assert run_stream.main([*map(str, inputs), "-o", str(tmp / "out"), "--backend", FAKE,
                                "--resolution", "64x48"]) == 0
    recorder = Recorder(monkeypatch)
    args, honoured = HONOURED[dest]
    args = [a.format(tmp=tmp) for a in args]
    via_sources = dest == "sources"
    if via_sources:
        lines = [f"{LAVFI} cam1"] if mode == modes.LIVE else [str(p) for p in inputs]
        (tmp / "sources.txt").write_text("\n".join(lines) + "\n")
    argv = ([] if via_sources else [str(p) for p in inputs]) + ["-o", str(tmp / "out")]
    argv += [] if dest == "backend" else ["--backend", FAKE]
    code = run_stream.main(argv + args)
    out, err = capsys.readouterr()
    if mode in modes.OPTION_MODES[dest] or dest in MAKES_A_BATCH and mode in (modes.FILE, modes.IMAGE):
        assert code == 0, err
        ctx = {"tmp": tmp, "inputs": inputs, "mode": mode, "via_sources": via_sources,
               "cluster": recorder.cluster, "views": recorder.views, "served": recorder.served}
        if dest in MAKES_A_BATCH:
            ctx["mode"] = modes.BATCH
        job = recorder.job
        assert job is not None or recorder.cluster is not None
        assert honoured(job, ctx), f"{dest} not honoured in {mode}"
    else:
        lines = err.strip().splitlines()
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("posestream: error: "), err
        flag = next(o for o in args if o.startswith("-"))
        assert flag in lines[0] and modes._NAMES[mode] in lines[0], lines[0]
        assert recorder.job is None and recorder.cluster is None


PRECISION_CELLS = [(value, mode) for value in ("f32", "int8", "bf16", "auto")
                   for mode in (*modes.MODES, "cluster")]


@pytest.mark.parametrize("value,mode", PRECISION_CELLS, ids=[f"{v}-{m}" for v, m in PRECISION_CELLS])
def test_every_precision_is_taken_in_every_mode(value, mode, media, monkeypatch, capsys):
    """--precision's values, each in each mode (the model-loading runs are tests/program/test_precision.py)."""
    recorder = Recorder(monkeypatch)
    inputs = media["inputs"][modes.BATCH if mode == "cluster" else mode]
    extra = ["--cluster", "tcp://127.0.0.1:9"] if mode == "cluster" else []
    code = run_stream.main([*map(str, inputs), "-o", str(media["tmp"] / "out"), "--backend", "openvino",
                            "--precision", value, *extra])
    assert code == 0, capsys.readouterr().err
    config = recorder.cluster["config"] if mode == "cluster" else recorder.job.config
    assert config.precision == value


@pytest.mark.parametrize("mode", [modes.FILE, modes.BATCH, modes.LIVE])
def test_jobs_are_made_whole_the_command_line_patches_nothing_onto_them(mode, media, monkeypatch,
                                                                        capsys):
    """What a run shows goes to the job's ``run``; no attribute is set on a job once it is made."""
    from stages.jobs.base import PipelineJob
    from stages.jobs.batch import BatchJob
    from stages.jobs.file_job import FileJob
    from stages.jobs.live import LiveJob

    made, patched = set(), []

    def marking(init):
        def made_whole(job, *args, **kwargs):
            init(job, *args, **kwargs)
            made.add(id(job))
        return made_whole

    def guard(job, name, value):
        if id(job) in made:
            patched.append(name)
        object.__setattr__(job, name, value)

    for cls in (FileJob, BatchJob, LiveJob):
        monkeypatch.setattr(cls, "__init__", marking(cls.__init__))
    monkeypatch.setattr(PipelineJob, "__setattr__", guard)
    recorder = Recorder(monkeypatch)
    http = ["--http", "127.0.0.1:0"] if mode == modes.LIVE else []
    code = run_stream.main([*map(str, media["inputs"][mode]), "-o", str(media["tmp"] / "out"),
                            "--backend", FAKE, "--preview", "127.0.0.1:0", "--show", "fullscreen",
                            *http])
    assert code == 0, capsys.readouterr().err
    assert recorder.job is not None and id(recorder.job) in made
    assert patched == []
    preview = next(server for server in recorder.served if server.label == "preview")
    assert recorder.views.preview == preview.publish
    assert recorder.views.show is not None and recorder.views.show.__self__.fullscreen


def test_cross_option_rejections_are_one_line(media, monkeypatch, capsys):
    Recorder(monkeypatch)
    tmp = media["tmp"]
    clips = [str(p) for p in media["inputs"][modes.BATCH]]
    for extra, named in ((["--no-video", "--preset", "fast"], "--preset"),
                         (["--no-track", "--track-memory", "3"], "--track-memory"),
                         (["--cluster", "tcp://127.0.0.1:9", "--preview", "0"], "--preview"),
                         (["--cluster", "tcp://127.0.0.1:9", "--files-in-flight", "3"],
                          "--files-in-flight")):
        code = run_stream.main([*clips, "-o", str(tmp / "out"), "--backend", FAKE, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and named in err[0], err


# -- the API column ---------------------------------------------------------------------------------

def test_the_api_takes_every_option_it_lists():
    import inspect

    from stages.api import results, run
    from stages.settings import LiveConfig
    from stages.settings import PostprocessConfig

    params = set(inspect.signature(results).parameters) | set(inspect.signature(run).parameters)
    fields = {"JobConfig": JobConfig.__dataclass_fields__,
              "JobConfig.postprocess": PostprocessConfig.__dataclass_fields__,
              "results(live=LiveConfig": LiveConfig.__dataclass_fields__}
    for dest, how in modes.API.items():
        if how is None:
            continue
        if how.startswith("results(input)"):
            assert {"input"} <= params
        elif how.startswith("run(outdir)"):
            assert "outdir" in params
        else:
            owner, _, field = how.rstrip(")").rpartition(".")
            assert field in fields[owner], how
            assert owner != "results(live=LiveConfig" or "live" in params


def test_the_api_rejects_what_means_nothing_for_its_input(tmp_path):
    from stages.api import results

    clip = make_test_clip(tmp_path / "a.mp4", frames=3, size=(64, 48))
    with pytest.raises(UsageError, match="--max-fps is for live sources"):
        next(results(clip, config=JobConfig(backend=FAKE), live=LiveConfig(max_fps=2)))
    for field, value in (("frame_step", 2), ("start", 1.0), ("end", 2.0)):
        with pytest.raises(UsageError, match=f"--{field.replace('_', '-')} is for video files"):
            next(results(LAVFI, config=JobConfig(backend=FAKE, **{field: value})))


def test_the_api_tracks_people_as_the_command_line_does(tmp_path):
    from stages.api import results

    clip = make_test_clip(tmp_path / "a.mp4", frames=3, size=(160, 120))
    one = "tests.support.fakes:OnePersonBackend"
    tracked = [p.track_id for r in results(clip, config=JobConfig(backend=one)) for p in r.people]
    untracked = [p.track_id for r in results(clip, config=JobConfig(backend=one, track=False))
                 for p in r.people]
    assert tracked == [tracked[0]] * 3 and tracked[0] is not None
    assert untracked == [None] * 3


def test_the_api_reads_a_stride_and_range_of_a_file(tmp_path):
    from stages.api import results

    clip = make_test_clip(tmp_path / "a.mp4", frames=20, fps=Fraction(10), size=(64, 48))
    config = JobConfig(backend=FAKE, resolution=(64, 48), frame_step=3, start=0.5, end=1.5)
    assert [r.frame.index for r in results(clip, config=config)] == [5, 8, 11, 14]


# -- end to end through the builder ----------------------------------------------------------------

def test_a_batch_honours_stride_no_video_and_csv(tmp_path, capsys):
    clips = [make_test_clip(tmp_path / n, frames=10, fps=Fraction(10), size=(64, 48))
             for n in ("a.mp4", "b.mp4")]
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((48, 64, 3), 90, np.uint8))
    code = run_stream.main([str(tmp_path / "*.*"), "-o", str(tmp_path / "out"), "--backend", FAKE,
                            "--resolution", "64x48", "--frame-step", "4", "--no-video",
                            "--format", "jsonl", "csv"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for clip in clips:
        assert [r["frame"] for r in read_keypoint_log(out / f"{clip.stem}.jsonl")] == [0, 4, 8]
        assert (out / f"{clip.stem}.csv").is_file() and not (out / clip.name).exists()
    # the batch's image is taken whole: a stride is about videos
    assert [r["frame"] for r in read_keypoint_log(out / "photo.jsonl")] == [0]
    assert not (out / "photo.png").exists()


def test_a_batch_with_preview_publishes_its_frames(tmp_path, capsys, monkeypatch):
    from stages.serve import preview as preview_module
    published = []
    monkeypatch.setattr(preview_module.PreviewServer, "publish",
                        lambda self, result: published.append(result.frame.source) or result)
    clips = [make_test_clip(tmp_path / n, frames=3, size=(64, 48)) for n in ("a.mp4", "b.mp4")]
    code = run_stream.main([*map(str, clips), "-o", str(tmp_path / "out"), "--backend", FAKE,
                            "--resolution", "64x48", "--preview", "127.0.0.1:0"])
    assert code == 0, capsys.readouterr().err
    assert sorted(published) == ["a.mp4"] * 3 + ["b.mp4"] * 3
