"""Live sources (RTSP, HTTP, cameras), several at once, through one inference pool.

Each source is read on its own thread and never blocks: its queue drops the
oldest frame when the pipeline is behind, and so does the one-frame queue
right before the inference pool (both per source, both counted), so the pool
always takes the freshest frame and latency stays bounded whatever the load.
Sources reconnect on their own; a dropped stream ends its output segment and
a new frame size starts a new one. Every source has its own segments and
keypoint logs under ``OUTDIR/<name>/``.

What the segments record (``LiveConfig.record``): ``annotated``, the drawn
frames (``SegmentedOutputs``); ``raw``, the camera's packets copied by a
``stages.recording.raw.RawRecorder`` that rolls the segments at key frames and
names the keypoint logs after them (a dropped camera's log is ended
``LATE_FRAMES_SECONDS`` later, so the frames still queued reach it);
``none``, the keypoint logs alone. Nothing is drawn unless an annotated
video or the preview wants it. ``stages.recording.retention.Retention`` keeps the
output folder within ``retain`` and ``max_disk``, sweeping every few
seconds and whenever a segment closes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from stages.outputs.atomic import clean_dead_partials
from stages.jobs.base import PipelineJob, Views
from stages.jobs.builder import LiveQueues, build_pipeline
from stages.jobs.engine import EngineRecord, plan_engine
from stages.sources.camera import camera_options, check_camera_sources
from stages.errors import InputError
from stages.frames import Frame, Result
from stages.settings import JobConfig, LiveConfig
from stages.sources.spec import LiveSpec
from stages.sources.stream import LiveSource, SourceEvent
from stages.publish.feed import LiveFeed
from stages.recording.folder_lock import FolderLocks, check_free
from stages.recording.live_log import LiveLogs
from stages.publish.mqtt import MqttPublisher
from stages.recording.raw import RawRecorder, check_raw_source
from stages.recording.retention import Retention
from stages.recording.segments import SegmentedOutputs, SegmentNamer
from stages.publish.monitor import SourceMonitor

log = logging.getLogger(__name__)

LATE_FRAMES_SECONDS = 2.0  # --record raw: a dropped camera's frames still queued reach its log



class LiveJob(PipelineJob):
    """Runs until stopped (or every source gave up).

    Args:
        sources: (spec, name or None) per source: rtsp://, http(s)://, /dev/videoN,
            a camera index, or lavfi:... test sources.
        outdir: Output directory; each source gets a folder.
        config: Model and pipeline settings (``queue_size`` is for the later stages).
        live: Live-source settings.
    """

    def __init__(self, sources: list[tuple[str, str | None]], outdir: Path, config: JobConfig,
                 live: LiveConfig = LiveConfig()) -> None:
        self.outdir = Path(outdir)
        self.config = config
        self.live = live
        camera = camera_options(size=live.camera_size, fps=live.camera_fps,
                                format=live.camera_format)
        specs = [(LiveSpec.parse(spec), name) for spec, name in sources]
        check_camera_sources([spec for spec, _ in specs], camera)
        self._sources = [LiveSource(spec, name=name, transport=live.transport,
                                    stall_timeout=live.stall_timeout, max_retries=live.max_retries,
                                    max_fps=live.max_fps, on_event=self._on_event,
                                    camera=camera if spec.is_camera else None,
                                    mirror=live.mirror)
                         for spec, name in specs]
        names = [s.name for s in self._sources]
        if len(set(names)) != len(names):
            raise InputError(f"live sources need distinct names, got {', '.join(names)}")
        check_free(self.outdir / name for name in names)  # refused before anything starts
        self.monitors = {s.name: SourceMonitor(s.name, live.stall_timeout) for s in self._sources}
        self.stats = self.monitors  # frames, dropped, reconnects, latency(q) per source
        self.feed = LiveFeed()  # live.jsonl, /events and MQTT subscribe to it
        self.live_logs: LiveLogs | None = None  # OUT/<source>/live.jsonl, while running
        self.mqtt = MqttPublisher(live.mqtt) if live.mqtt else None  # checks the URL and paho now
        self.record = live.record if config.video else "none"
        self.retention = Retention(self.outdir, names, max_age=live.retain, max_bytes=live.max_disk)
        self._recorders: dict[str, RawRecorder] = {}
        self._outputs = {s.name: self._segments(s) for s in self._sources}
        self.failures: dict[str, str] = {}
        self.engine: EngineRecord | None = None
        self._lock = threading.Lock()
        super().__init__()
        self._started = time.monotonic()

    def _segments(self, source: LiveSource) -> SegmentedOutputs:
        """The source's segments; with ``--record raw`` its recorder rolls them at key frames
        and its keypoint logs follow, under the same names."""
        seconds = 60 * self.live.segment_minutes
        namer = SegmentNamer(self.outdir / source.name, source.name)
        outputs = SegmentedOutputs(self.outdir, source.name, formats=self.config.formats,
                                   video=self.record == "annotated",
                                   segment_seconds=seconds,
                                   preset=self.config.preset, namer=namer,
                                   on_finish=self.retention.poke,
                                   on_recording=self.monitors[source.name].recording)
        if self.record == "raw":
            check_raw_source(source.spec, source.name)
            source.packets = self._recorders[source.name] = RawRecorder(
                namer, segment_seconds=seconds, on_segment=outputs.start_at,
                on_finish=self.retention.poke,
                on_recording=functools.partial(self.monitors[source.name].recording, part="raw"))
        return outputs

    def run(self, on_result: Callable[[Result], None] | None = None, *,
            views: Views = Views()) -> dict[str, SourceMonitor]:
        """Process until ``cancel`` or until every source ended; return per-source figures.

        Args:
            on_result: Called with each processed result, in order per source.
            views: What shows the drawn pictures as they come (preview, window).

        Raises:
            InputError: Some source gave up (after the others ended), naming each;
                or another run writes a source's folder (``OUTDIR/<source>/`` has
                one writer: ``stages.recording.folder_lock``), before anything is written.
        """
        with FolderLocks(self.outdir / name for name in self.names):
            return self._run(on_result, views)

    def _run(self, on_result: Callable[[Result], None] | None,
             views: Views) -> dict[str, SourceMonitor]:
        """``run``, while every source's folder is held."""
        engine = plan_engine(self.config, latency=True)
        self.engine = engine.record
        self._started = time.monotonic()
        feeds = [(self._feed(source), source.close) for source in self._sources]
        sinks = views.sinks()
        rendered = dataclasses.replace(self.config, video=self.record == "annotated")
        # every queue is short: a frame waits behind at most a few others anywhere
        pipeline = build_pipeline(rendered, engine, feeds, name="live",
                                  pictures=bool(sinks),
                                  sinks=sinks + [("write", self._write), ("publish", self.feed.publish)],
                                  live=LiveQueues(queue_size=self.live.queue_size,
                                                  on_drop=self._dropped))
        for name in self.names:  # a killed run's partial segments become closed ones
            clean_dead_partials(self.outdir / name)
        self.retention.start()
        try:
            self.live_logs = LiveLogs(self.outdir, self.live.live_log_size, sources=self.names)
            self.feed.subscribe(self.live_logs)
            if self.mqtt is not None:
                self.feed.subscribe(self.mqtt.start(self.monitors))
            self._drive(pipeline, on_result)
        finally:
            try:
                for recorder in self._recorders.values():
                    recorder.close()
                for out in self._outputs.values():
                    out.close()
            finally:
                self.retention.close()
                for monitor in self.monitors.values():
                    monitor.stopped()  # before the feed closes, so MQTT publishes "stopped"
                self.feed.close()
        if self.failures and not self.cancelled:
            raise InputError("; ".join(self.failures.values()))
        return self.stats

    def cancel(self) -> None:
        """Stop now; every segment is finished and renamed."""
        super().cancel()
        for source in self._sources:
            source.close()

    @property
    def names(self) -> list[str]:
        """The sources' names, in the order given."""
        return [s.name for s in self._sources]

    def snapshot(self) -> dict:
        """Figures for the dashboard and the summary: per source and per stage."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        sources = []
        for source in self._sources:
            monitor = self.monitors[source.name]
            monitor.rate_dropped = source.rate_dropped
            sources.append(monitor.row())
        stages = self._pipeline.statistics().stage_rows(elapsed) if self._pipeline else []
        engine = self.engine.as_dict() if self.engine is not None else None
        return {"sources": sources, "stages": stages, "seconds": elapsed,
                "failures": dict(self.failures), "engine": engine, "recording": self._recording(),
                "mqtt": self.mqtt.status() if self.mqtt is not None else None}

    def _recording(self) -> dict:
        """What the segments record and what retention did (``used``: None without limits)."""
        retention = self.retention
        return {"record": self.record, "retain": self.live.retain, "max_disk": self.live.max_disk,
                "used": retention.used if retention.enabled else None,
                "deleted": len(retention.deleted), "freed": retention.freed,
                "raw_packets": {name: r.packets for name, r in self._recorders.items()}}

    def _feed(self, source: LiveSource):
        """The source's frames; a source that gives up ends alone, the others carry on."""
        try:
            yield from source
        except InputError as exc:
            log.error("%s: %s", source.name, exc)
            self.failures[source.name] = str(exc)

    def _write(self, result: Result) -> Result:
        name = result.frame.source
        recorder = self._recorders.get(name)
        if recorder is not None and recorder.fatal is not None:
            raise recorder.fatal  # a full disk only stops the recording (RawRecorder)
        self._outputs[name].write(result)
        self.monitors[name].frame_done(result)
        return result

    def _dropped(self, frame: Frame) -> None:
        self.monitors[frame.source].dropped_one()

    def _on_event(self, event: SourceEvent) -> None:
        if event.kind in ("disconnected", "stalled", "gave_up"):
            outputs = self._outputs[event.source]
            if self.record == "raw" and outputs.current:  # late frames join their segment's log
                _later(LATE_FRAMES_SECONDS, outputs.end_segment, outputs.current)
            else:
                outputs.end_segment()  # finished and renamed while the camera is away
        self.monitors[event.source].event(event)


def _later(seconds: float, call: Callable[..., None], *args: object) -> None:
    """Call ``call(*args)`` in ``seconds`` on a daemon thread (a dropped camera's last segment)."""
    timer = threading.Timer(seconds, call, args)
    timer.daemon = True
    timer.start()
