"""A live source as the user wrote it, parsed once into what the rest of the code reads.

``rtsp://user:pw@cam:554/x``, ``/dev/video0``, ``0`` or ``lavfi:testsrc2`` is
read here, and only here, into a ``LiveSpec``: its kind, the text safe to
show (credentials masked), the source's default name, and what FFmpeg is
given to open. ``LiveSource``, ``LiveJob`` and the camera checks read that
value instead of looking at the string again; ``live_kind`` is the one
place that tells a live source from a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from stages.errors import InputError
from stages.sources._stream_url import STREAM_SCHEMES, validate_live_spec
from stages.sources.credentials import display_name, mask_credentials, mask_url

__all__ = ["LiveKind", "LiveSpec", "is_live", "live_kind"]

LiveKind = Literal["rtsp", "http", "camera", "lavfi"]

_LAVFI = "lavfi:"
_VIDEO_DEVICE = re.compile(r"/dev/video\d+\Z")
_CAMERA_INDEX = re.compile(r"\d+\Z")
_RTSP = ("rtsp://", "rtsps://")
_NOT_LIVE = ("not a live source (expected rtsp://, rtsps://, http(s)://, /dev/videoN, "
             "a camera index or lavfi:)")


def live_kind(spec: str) -> LiveKind | None:
    """What kind of live source ``spec`` names, or None for a file.

    Live: ``rtsp://`` and ``rtsps://`` URLs (``rtsp``), ``http://`` and
    ``https://`` URLs (``http``), ``/dev/videoN`` and a bare camera index
    such as ``0`` (``camera``), and FFmpeg lavfi test sources written
    ``lavfi:testsrc2=size=320x240:rate=25`` (``lavfi``). The URL is not
    checked here (``LiveSpec.parse`` does that).

    Args:
        spec: A source as the user wrote it.
    """
    spec = spec.strip()
    lower = spec.lower()
    if lower.startswith(_RTSP):
        return "rtsp"
    if lower.startswith(STREAM_SCHEMES):  # the other stream schemes: http://, https://
        return "http"
    if spec.startswith(_LAVFI):
        return "lavfi"
    if _VIDEO_DEVICE.match(spec) or _CAMERA_INDEX.match(spec):
        return "camera"
    return None


def is_live(spec: str) -> bool:
    """Whether ``spec`` names a live source rather than a file (see ``live_kind``)."""
    return live_kind(spec) is not None


@dataclass(frozen=True, slots=True)
class LiveSpec:
    """A live source, parsed once (make it with ``LiveSpec.parse``).

    The repr shows the masked form only: ``spec`` and ``url`` may hold a password.

    Attributes:
        spec: The source as given, surrounding white space removed.
        kind: ``rtsp``, ``http``, ``camera`` or ``lavfi`` (see ``live_kind``).
        masked: ``spec`` with its credentials hidden (``mask_url``), safe to show.
        name: The source's default id: ``videoN`` for a camera index N, else
            ``display_name(spec)`` (``127.0.0.1_8554_cam1``, ``dev_video0``).
        url: What FFmpeg opens: the URL, ``/dev/videoN`` for a camera (an
            index too), or the filter graph of a ``lavfi:`` source.
    """

    spec: str = field(repr=False)
    kind: LiveKind
    masked: str
    name: str
    url: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.kind not in get_args(LiveKind):
            raise ValueError(f"kind must be one of {', '.join(get_args(LiveKind))}, "
                             f"got {self.kind!r}")

    @classmethod
    def parse(cls, spec: str) -> LiveSpec:
        """Read a live source string.

        Args:
            spec: ``rtsp://``/``rtsps://``/``http(s)://`` URL (credentials
                allowed, percent-encoded), ``/dev/videoN``, a camera index,
                or ``lavfi:GRAPH``.

        Raises:
            InputError: One line, credentials masked: ``spec`` is not a live
                source, or is a URL that does not name one host and port
                unambiguously (``validate_live_spec``).
        """
        text = spec.strip()
        kind = live_kind(text)
        masked = mask_credentials(text) if kind in ("camera", "lavfi") else mask_url(text)
        if kind is None:
            raise InputError(f"{masked}: {_NOT_LIVE}")
        validate_live_spec(text)
        name, url = _name_and_url(text, kind)
        return cls(spec=text, kind=kind, masked=masked, name=name, url=url)

    @property
    def is_camera(self) -> bool:
        """Whether this is a V4L2 camera (``/dev/videoN`` or a camera index)."""
        return self.kind == "camera"


def _name_and_url(spec: str, kind: LiveKind) -> tuple[str, str]:
    """(default name, what FFmpeg opens) of a checked ``spec``."""
    if kind == "lavfi":
        return display_name(spec), spec[len(_LAVFI):]
    if _CAMERA_INDEX.match(spec):
        return f"video{spec}", f"/dev/video{spec}"
    return display_name(spec), spec
