"""A looping RTSP test server: serves one H.264 mp4 at rtsp://127.0.0.1:PORT/MOUNT.

Run it with Debian's ``/usr/bin/python3`` (it needs ``gi`` and the GStreamer
RTSP server typelib; ``scripts/install_gstreamer.sh`` installs them)::

    /usr/bin/python3 tests/support/rtsp_server.py clip.mp4 --port 8554 --mount /cam1 \\
        [--user USER --password PASS]

It prints ``READY <port>`` on stdout once it listens, serves until SIGTERM or
SIGINT, and listens on 127.0.0.1 only.

Looping: the clip's H.264 access units are read once into memory (GStreamer
``qtdemux ! h264parse ! appsink``) and pushed, round and round, into an
``appsrc`` of each media with timestamps that keep growing by the clip's
duration per lap, so the stream never ends and its clock never jumps back;
the RTP sinks pace it in real time. The media is shared: a client that joins
while another one plays starts mid-lap and waits for the next key frame, so
give clips short GOPs for quick joins.

With ``--user``/``--password`` the server requires HTTP basic auth.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_LAUNCH = ("( appsrc name=src is-live=false format=time stream-type=stream max-bytes=200000 "
           "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )")


class Clip:
    """The access units of an H.264 mp4, with their times, held in memory."""

    def __init__(self, path: str) -> None:
        pipeline = Gst.parse_launch(
            "filesrc name=file ! qtdemux ! h264parse ! "
            "video/x-h264,stream-format=byte-stream,alignment=au ! "
            "appsink name=sink sync=false")
        pipeline.get_by_name("file").set_property("location", path)
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        self.units: list[tuple[bytes, int, int, bool]] = []  # data, pts, dts, delta
        self.caps = None
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            self.caps = self.caps or sample.get_caps()
            ok, info = buf.map(Gst.MapFlags.READ)
            data = bytes(info.data)
            buf.unmap(info)
            dts = buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts
            self.units.append((data, buf.pts, dts,
                               bool(buf.get_flags() & Gst.BufferFlags.DELTA_UNIT)))
        pipeline.set_state(Gst.State.NULL)
        if not self.units:
            raise SystemExit(f"rtsp_server: no H.264 video in {path}")
        times = sorted(u[1] for u in self.units)
        step = min((b - a for a, b in zip(times, times[1:]) if b > a), default=Gst.SECOND // 25)
        self.lap = times[-1] - times[0] + step


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """Builds medias whose appsrc pushes the clip in an endless loop."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.set_launch(_LAUNCH)
        self.set_shared(True)
        self.connect("media-configure", self._configure)

    def _configure(self, factory, media) -> None:
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.clip.caps)
        state = {"next": 0}
        src.connect("need-data", self._feed, state)

    def _feed(self, src, _length, state) -> None:
        units = self.clip.units
        for _ in range(4):
            lap, i = divmod(state["next"], len(units))
            data, pts, dts, delta = units[i]
            buf = Gst.Buffer.new_wrapped(data)
            offset = lap * self.clip.lap
            buf.pts, buf.dts = pts + offset, dts + offset
            if delta:
                buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
            state["next"] += 1
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return


def _auth(user: str, password: str) -> GstRtspServer.RTSPAuth:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    return auth


def _permissions(user: str) -> GstRtspServer.RTSPPermissions:
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(user, "media.factory.access", True)
    permissions.add_permission_for_role(user, "media.factory.construct", True)
    return permissions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="H.264 mp4 to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)

    Gst.init(None)
    factory = LoopingFactory(Clip(args.clip))
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user is not None:
        server.set_auth(_auth(args.user, args.password or ""))
        factory.set_permissions(_permissions(args.user))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
