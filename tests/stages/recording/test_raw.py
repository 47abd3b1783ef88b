"""--record raw: the camera's packets copied into segments; --record none: logs only."""

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import run_stream
from stages.errors import InputError, OutputError
from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from stages.recording.raw import RawRecorder, RawSegment
from stages.recording.segments import SegmentNamer
from tests.support.live_fixtures import (gstreamer, make_live_clip, rtsp_server,  # noqa: F401
                                 run_in_thread, wait_for)
from tests.support.processes import sigkill_once_it_says

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
LAVFI = "lavfi:testsrc2=size=64x48:rate=5"
DEADLINE = 30.0
CLIP_FRAMES, GOP = 50, 5  # make_live_clip: 2 s at 25 fps, a key frame every 5


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def _packets(clip):
    container = av.open(str(clip))
    return container, container.streams.video[0], [p for p in container.demux(video=0) if p.size]


def _read(path):
    """(packets as (bytes, key, pts, dts), decoded pictures) of a video file."""
    with av.open(str(path)) as container:
        packets = [(bytes(p), p.is_keyframe, p.pts, p.dts) for p in container.demux(video=0)
                   if p.size]
    with av.open(str(path)) as container:
        pictures = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return packets, pictures


def test_segments_start_at_a_key_frame_and_roll_at_the_first_one_after_their_time(tmp_path):
    container, stream, packets = _packets(make_live_clip(tmp_path / "c.mp4", seconds=1.0))
    clock, started = Clock(), []
    recorder = RawRecorder(SegmentNamer(tmp_path / "cam", "cam"), segment_seconds=10,
                           on_segment=lambda index, base: started.append((index, base)),
                           clock=clock)
    with container, recorder:
        recorder.connection_started(stream)
        for number, packet in enumerate(packets[2:], start=2):  # joined mid-GOP
            clock.now += 4  # 0.16 s of stream is 4 s here: a roll is due every third packet
            recorder.packet(packet, number)
    assert recorder.skipped == 3 and recorder.packets == len(packets) - 5
    assert [index for index, _ in started] == [5, 10, 15, 20]
    assert [p.name for p in recorder.finished] == [f"{base}.mkv" for _, base in started]
    for path in recorder.finished:
        copied, pictures = _read(path)
        assert len(copied) == len(pictures) == 5 and copied[0][1]  # a whole GOP, key frame first
        assert copied[0][2] == 0 and [c[2] for c in copied] == sorted(c[2] for c in copied)
    first = _read(recorder.finished[0])[0]
    assert [c[0] for c in first] == [bytes(p) for p in packets[5:10]]  # the bytes, untouched


def test_timestamps_start_at_zero_and_never_go_back(tmp_path):
    container, stream, packets = _packets(make_live_clip(tmp_path / "c.mp4", seconds=0.4))
    with container:
        segment = RawSegment(tmp_path / "s.mkv", stream)
        given = []
        for number, packet in enumerate(packets):
            given.append((packet.pts, packet.dts))
            if number == 3:
                packet.pts = packet.dts = None  # a packet without a time
            elif number == 6:
                packet.dts = packet.pts = packets[5].dts  # one that does not advance
            elif number >= 8:  # the camera's clock reset, back by an hour
                packet.dts -= round(3600 / packet.time_base)
                packet.pts -= round(3600 / packet.time_base)
            segment.write(packet)
        segment.close()
    copied, pictures = _read(tmp_path / "s.mkv")
    assert len(copied) == len(pictures) == len(packets)
    dts = [c[3] for c in copied]
    assert dts[0] == 0 and all(b >= a for a, b in zip(dts, dts[1:])) and dts[-1] < 1000  # ms
    assert all(pts >= d for (_, _, pts, d) in copied)
    assert not list(tmp_path.glob(".s.mkv*"))  # the partial file was renamed


def test_the_packet_is_left_as_the_decoder_needs_it(tmp_path):
    container, stream, packets = _packets(make_live_clip(tmp_path / "c.mp4", seconds=0.2))
    with container, RawRecorder(SegmentNamer(tmp_path / "cam", "cam"),
                                segment_seconds=60) as recorder:
        recorder.connection_started(stream)
        decoded = 0
        for number, packet in enumerate(packets):
            before = (packet.pts, packet.dts, packet.time_base, packet.stream)
            recorder.packet(packet, number)
            assert (packet.pts, packet.dts, packet.time_base, packet.stream) == before
            decoded += len(stream.decode(packet))
        decoded += len(stream.decode(None))
    assert decoded == recorder.packets == len(packets)


def _cut_camera_stream(path, *, slices_sent):
    """A raw H.264 stream as a camera sends it (Annex B, access unit delimiters), ten frames
    of two slices each, cut where the camera dropped: after the delimiter and parameter sets
    of the next key frame and ``slices_sent`` of its slices."""
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=Fraction(25), options={
            "g": "5", "preset": "ultrafast", "x264-params": "aud=1:slices=2"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            image = np.full((48, 64, 3), 20 * index, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    slices = [m.start() for m in re.finditer(rb"\x00?\x00\x00\x01(.)", data, re.DOTALL)
              if m[1][0] & 0x1F == 5][:2]  # the first frame's (a key frame's) two slices
    path.write_bytes(data + data[:slices[slices_sent]])
    return path


@pytest.mark.parametrize("slices_sent", [0, 1])
def test_a_frame_cut_by_the_camera_dropping_is_copied_only_if_it_holds_a_picture(tmp_path,
                                                                                  slices_sent):
    # the demuxer's parser hands over the cut frame at the end of the stream, as FFmpeg's RTSP
    # demuxer does when a camera drops between the NAL units of a frame; without a slice it is
    # no picture and a decoder rejects it ("no frame!": InvalidDataError)
    container, stream, packets = _packets(_cut_camera_stream(tmp_path / "cam.h264",
                                                             slices_sent=slices_sent))
    assert len(packets) == 11  # ten frames and the cut one
    with container, RawRecorder(SegmentNamer(tmp_path / "cam", "cam"),
                                segment_seconds=60) as recorder:
        recorder.connection_started(stream)
        for number, packet in enumerate(packets):
            recorder.packet(packet, number)
        recorder.connection_ended()
    [segment] = recorder.finished
    copied, pictures = _read(segment)
    assert len(copied) == len(pictures) == 10 + slices_sent
    assert recorder.fragments == 1 - slices_sent and recorder.packets == 10 + slices_sent


def test_a_failure_to_record_is_kept_not_raised_into_the_source(tmp_path):
    container, stream, packets = _packets(make_live_clip(tmp_path / "c.mp4", seconds=0.2))
    (tmp_path / "cam").write_text("a file where the folder should be")
    with container, RawRecorder(SegmentNamer(tmp_path / "cam", "cam"),
                                segment_seconds=60) as recorder:
        recorder.connection_started(stream)
        for number, packet in enumerate(packets):
            recorder.packet(packet, number)
    assert isinstance(recorder.error, OutputError) and "cam" in str(recorder.error)
    assert recorder.packets == 0


def _clip_numbers(packets, clip_packets, *, cut=False):
    """The clip's packet numbers whose bytes each recorded packet carries (the server puts
    an access unit delimiter before them; some frames of the flat-colour clip have the same
    bytes), or "key" for a key frame's packets (the server sends each key frame in two
    packets, with and without its parameter sets). With ``cut`` (the camera was killed) the
    last packet may be the start of a frame: its delimiter and the slices sent before the kill."""
    numbers = []
    for number, (data, key, *_) in enumerate(packets):
        found = {n for n, c in enumerate(clip_packets)
                 if data.endswith(c) and len(data) - len(c) < 16}
        if cut and number == len(packets) - 1 and not found:
            found = {n for n, c in enumerate(clip_packets)
                     if any(c.startswith(data[k:]) for k in range(1, min(16, len(data) - 4)))}
        assert key or found, f"a packet that is not one of the clip's: {len(data)} bytes"
        numbers.append("key" if key else found)
    return numbers


def _no_frame_missing(numbers):
    """Every clip frame is there, in order, round the loop: each packet the one after the
    last, a key frame's packets where the clip has a key frame (every GOP frames)."""
    following = None  # the numbers the next packet may have
    for previous, number in zip([None] + numbers, numbers):
        if number == "key":
            if following is not None and previous != "key":
                following = {n + 1 for n in following if n % GOP == 0}
                assert following, numbers
            continue
        possible = number if following is None else number & {n % CLIP_FRAMES for n in following}
        assert possible, numbers
        following = {n + 1 for n in possible}
    return True


def test_raw_segments_hold_every_frame_the_camera_sent_in_its_own_bytes(tmp_path, rtsp_server,
                                                                       monkeypatch):
    monkeypatch.setenv("POSESTREAM_FAKE_DELAY", "0.1")  # 10 FPS processed, 25 FPS sent
    clip = make_live_clip(tmp_path / "c.mp4")
    cam = rtsp_server(clip)
    out = tmp_path / "out"
    job = LiveJob([(cam.url(), "cam")], out,
                  JobConfig(backend="tests.support.fakes:SlowBackend", resolution=(64, 48)),
                  LiveConfig(record="raw", stall_timeout=1.0))
    thread, result = run_in_thread(job)
    recorder = job._recorders["cam"]
    try:
        wait_for(lambda: recorder.packets >= 60, "a first connection's packets")
        cam.kill()
        wait_for(lambda: len(recorder.finished) == 1, "the first raw segment to finish")
        first = recorder.packets  # more than 60 when the kill came late (a loaded machine)
        cam.restart()
        wait_for(lambda: job.stats["cam"].reconnects >= 1 and recorder.packets >= first + 60,
              "the second connection's packets")
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    assert len(recorder.finished) == 2  # one segment per connection
    clip_packets = [data for data, *_ in _read(clip)[0]]
    assert len(clip_packets) == CLIP_FRAMES
    pictures_recorded = 0
    for number, path in enumerate(recorder.finished):
        packets, pictures = _read(path)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 240)
        assert packets[0][1] and len(pictures) == len(packets) > 20
        assert _no_frame_missing(_clip_numbers(packets, clip_packets, cut=number == 0))
        pictures_recorded += len(pictures)
        # the keypoints of the same frames are in the log of the same name
        assert read_keypoint_log(path.with_suffix(".jsonl"))
    # the keypoints of frames still queued when the camera dropped joined their segment's log
    logs = sorted((out / "cam").glob("cam-*.jsonl"))
    assert [p.stem for p in logs] == [p.stem for p in recorder.finished]
    processed = sum(len(read_keypoint_log(p)) for p in logs)
    assert processed == job.stats["cam"].frames < pictures_recorded  # the camera's full rate
    assert "render" not in {row["stage"] for row in job.snapshot()["stages"]}


def test_raw_needs_a_stream_with_packets(tmp_path, capsys):
    with pytest.raises(InputError, match="--record raw needs a stream with packets"):
        LiveJob([(LAVFI, "test")], tmp_path / "out", JobConfig(**FAKE), LiveConfig(record="raw"))
    code = run_stream.main([LAVFI, "-o", str(tmp_path / "out"), "--backend", FAKE["backend"],
                            "--record", "raw"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--record raw needs a stream with packets" in err[0]
    assert not (tmp_path / "out" / "test").exists()


def test_record_none_writes_keypoint_logs_only_and_draws_nothing(tmp_path):
    out = tmp_path / "out"
    job = LiveJob([(LAVFI, "test")], out, JobConfig(**FAKE, formats=("jsonl", "csv")),
                  LiveConfig(record="none", segment_minutes=0.01))
    thread, result = run_in_thread(job)
    try:
        wait_for(lambda: len(list((out / "test").glob("*.csv"))) >= 2, "two segments")
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    files = sorted(p.name for p in (out / "test").iterdir())
    assert files and not [f for f in files if not f.endswith((".jsonl", ".csv"))], files
    assert "render" not in {row["stage"] for row in job.snapshot()["stages"]}


@pytest.mark.parametrize("field, value, flag", [("record", "raw", "--record"),
                                                ("retain", 3600.0, "--retain"),
                                                ("max_disk", 1 << 20, "--max-disk")])
def test_the_api_that_writes_nothing_refuses_recording_settings(field, value, flag):
    from stages.api import results
    from stages.errors import UsageError

    with pytest.raises(UsageError, match=f"{flag} .* results\\(\\) writes nothing"):
        next(results(LAVFI, config=JobConfig(**FAKE), live=LiveConfig(**{field: value})))


KILLED_RECORDER = """
import sys, time
sys.path.insert(0, {root!r})
import av
import numpy as np
from pathlib import Path
from stages.recording.raw import RawRecorder
from stages.recording.segments import SegmentNamer
container = av.open({clip!r})
stream = container.streams.video[0]
recorder = RawRecorder(SegmentNamer(Path({folder!r}), "cam"), segment_seconds=3600)
recorder.connection_started(stream)
for number, packet in enumerate(container.demux(stream)):
    recorder.packet(packet, number)
    if number == 60:
        print("WROTE", flush=True)
        time.sleep(60)
"""


def test_a_killed_raw_recording_plays_and_ages_out_after_the_next_start(tmp_path):
    from stages.outputs.atomic import clean_dead_partials
    from stages.recording.retention import Retention

    clip = make_live_clip(tmp_path / "c.mp4", seconds=4.0)
    folder = tmp_path / "out" / "cam"
    code = KILLED_RECORDER.format(root=str(Path(__file__).resolve().parents[3]), clip=str(clip),
                                  folder=str(folder))
    sigkill_once_it_says(code)
    [partial] = folder.glob(".cam-*.mkv.partial-*")
    packets, pictures = _read(partial)
    assert len(pictures) == len(packets) >= 50  # up to its last cluster (cut at key frames)
    [kept] = clean_dead_partials(folder)  # what the next run does at start
    assert kept.name.endswith("-1.partial.mkv")
    assert Retention(tmp_path / "out", ["cam"], max_bytes=1).sweep() == [kept.name[:-12]]
    assert not kept.exists()


@pytest.mark.parametrize("codec, container, pix_fmt", [("mjpeg", "avi", "yuvj422p"),
                                                       ("rawvideo", "nut", "yuyv422")])
def test_what_usb_cameras_send_is_copied_too(tmp_path, codec, container, pix_fmt):
    from fractions import Fraction

    import numpy as np

    source = tmp_path / f"camera.{container}"
    with av.open(str(source), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for i in range(10):
            picture = np.full((48, 64, 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    container_in, stream, packets = _packets(source)
    with container_in:
        segment = RawSegment(tmp_path / "copy.mkv", stream)
        for packet in packets:
            segment.write(packet)
        assert segment.close()
    copied, pictures = _read(tmp_path / "copy.mkv")
    assert [c[0] for c in copied] == [bytes(p) for p in packets] and len(pictures) == 10


def test_retention_under_a_raw_recording_spares_what_is_being_written(tmp_path, rtsp_server,
                                                                      caplog):
    cam = rtsp_server(make_live_clip(tmp_path / "c.mp4"))
    out = tmp_path / "out"
    job = LiveJob([(cam.url(), "cam")], out, JobConfig(**FAKE),
                  LiveConfig(record="raw", segment_minutes=0.005, max_disk=1))
    thread, result = run_in_thread(job)
    try:
        wait_for(lambda: len(job.retention.deleted) >= 4, "four raw segments deleted")
    finally:
        job.cancel()
        thread.join(DEADLINE)
    # a deleted open file would have failed its rename at the roll, and the run with it
    assert not thread.is_alive() and "error" not in result, result
    deleted = set(job.retention.deleted)
    assert not [p for p in (out / "cam").iterdir() if p.name.split(".")[0] in deleted]
    assert "over --max-disk" in caplog.text


def test_logs_follow_the_announced_segments_and_roll_by_time_only_on_their_own(tmp_path):
    from stages.frames import Frame, Result
    from stages.recording.segments import SegmentedOutputs

    def result(index, wall):
        image = np.zeros((48, 64, 3), np.uint8)
        return Result(Frame(source="cam", index=index, pts=index / 25, wall=wall, image=image), ())

    outputs = SegmentedOutputs(tmp_path, "cam", video=False, segment_seconds=1.0)
    outputs.start_at(0, "cam-20260101T000000Z-1")
    outputs.start_at(5, "cam-20260101T000003Z-2")
    with outputs:
        for index in range(4):  # 3 s in one announced segment: no roll by time
            outputs.write(result(index, 1_800_000_000 + index))
        outputs.write(result(6, 1_800_000_004))  # frame 5 was dropped: 6 opens the next
        outputs.end_segment()
        for index in range(7, 10):  # unannounced: a name of its own, rolled by time
            outputs.write(result(index, 1_800_000_005 + index))
    names = sorted(p.name for p in tmp_path.glob("cam/*.jsonl"))
    assert names[:2] == ["cam-20260101T000000Z-1.jsonl", "cam-20260101T000003Z-2.jsonl"]
    assert len(names) == 5 and [len(read_keypoint_log(tmp_path / "cam" / n)) for n in names[:2]] \
        == [4, 1]
