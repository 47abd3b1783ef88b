"""Stream URLs: reject, before any connection, those that do not name one camera clearly.

FFmpeg (``av_url_split``) ends a URL's user info at the first "/", "?" or
"#" and takes the LAST "@" before it as the end of the user info. Tried here
with FFmpeg 8 and the RTSP test server: ``rtsp://dave:p@ss@127.0.0.1/x``
connects (user ``dave``, password ``p@ss``), ``rtsp://dave:p%2Fss@...``
connects, but ``rtsp://dave:p@ss/w0rd@127.0.0.1/x`` looks up a host ``ss``
and fails with an I/O error. So such URLs are refused here, in one line with
the credentials masked (``mask_url``: also when white space or a quote in
them is what is wrong), as are malformed hosts and ports.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

from stages.sources.credentials import mask_url, split_userinfo
from stages.errors import InputError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")


def validate_live_spec(spec: str) -> None:
    """Reject a stream URL that does not name one host and port unambiguously.

    Checked for ``rtsp://``, ``rtsps://``, ``http://`` and ``https://``
    specs (others pass): no white space or control characters; a host; an
    IPv6 host in brackets (``[::1]``) that is a valid address; a port, when
    given, in 1-65535; and no "/", "?" or "#" before the last "@". That
    last one: FFmpeg ends the user info at the first "/", "?" or "#" and
    would connect to a host read out of a password holding one, sending the
    rest of it in the request; so an unencoded "/" in a password, or an "@"
    in a path or query, must be percent-encoded.

    Args:
        spec: A source as the user wrote it.

    Raises:
        InputError: One line: the URL, credentials masked, and what is wrong.
    """
    spec = spec.strip()
    if not spec.lower().startswith(STREAM_SCHEMES):
        return
    try:
        _check(spec)
    except _BadUrl as exc:
        raise InputError(f"{mask_url(spec)}: {exc}") from None


class _BadUrl(ValueError):
    """What is wrong with a URL, in words for the user (no credentials)."""


def _check(spec: str) -> None:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in spec):
        raise _BadUrl("white space or a control character in the URL (percent-encode it: %20)")
    _, userinfo, rest = split_userinfo(spec)
    if userinfo is not None and any(c in userinfo for c in "/?#"):
        raise _BadUrl("ambiguous URL: a '/', '?' or '#' comes before the last '@'; "
                      "percent-encode '/' '?' '#' '@' in the user name and password "
                      "(%2F %3F %23 %40) and any '@' in the path or query (%40)")
    host, port = _host_port(re.split(r"[/?#]", rest, maxsplit=1)[0])
    if not host:
        raise _BadUrl("no host in the URL")
    if port == "":
        raise _BadUrl("empty port after ':'")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise _BadUrl(f"port {port!r} is not a number in 1-65535")


def _host_port(authority: str) -> tuple[str, str | None]:
    """(host, port or None) of ``host[:port]`` or ``[IPv6][:port]``."""
    if authority.startswith("["):
        address, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise _BadUrl("unclosed '[' in the host: write an IPv6 host as [ADDRESS]")
        if not _is_ipv6(address):
            raise _BadUrl(f"[{address}] is not an IPv6 address")
        if after and not after.startswith(":"):
            raise _BadUrl(f"unexpected {after!r} after the IPv6 host [{address}]")
        return address, after[1:] if after else None
    if "[" in authority or "]" in authority:
        raise _BadUrl("stray '[' or ']' in the host")
    host, colon, port = authority.partition(":")
    if ":" in port:
        raise _BadUrl("an IPv6 host needs brackets, e.g. rtsp://[::1]:8554/cam")
    return host, port if colon else None


def _is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(unquote(address))  # a zone is written %25eth0
    except ValueError:
        return False
    return True
