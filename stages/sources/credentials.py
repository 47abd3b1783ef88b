"""Keep credentials in stream URLs out of logs, errors and file names.

Camera URLs often carry a user name and password (``rtsp://user:pass@host/``)
or a secret query parameter (``?password=...``), and FFmpeg echoes the whole
URL in its error messages. Everything this project logs or raises about a
stream goes through ``mask_credentials`` first; ``display_name`` gives a
short id for a stream that is safe in logs and file names.
"""

from __future__ import annotations

import hashlib
import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"

# scheme://userinfo@ : the user info runs to the last "@" of the URL (the URL
# ends at white space or a quote), so a password holding an unencoded "@",
# "/", "?", "#" or ":" is masked whole. FFmpeg's own split (av_url_split)
# ends the authority at the first "/", "?" or "#" and so would read a host
# out of such a password: the widest reading is the only safe one to show,
# and ``split_userinfo`` lets callers reject the ambiguous URLs. An "@" in a
# path is masked as if it were user info (over-masking hides nothing secret).
#
# A URL whose user info holds white space or a quote (``rtsp://dave:s3cr3t @host/x``,
# a typo the URL check refuses) would slip past that reading, so when it finds no
# "@" the user info runs on, over white space and quotes, to the last "@" of the
# line that a host could follow. A scheme written with one "/" too few or too many
# (``rtsp:/dave:pw@host``) is read as one too.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*:/+)"
                       r"(?:[^\s'\"]*@|[^\r\n]*@(?=[^\s@]))")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://")
_SCHEME_TYPO = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:/+")
_SECRET_KEYS = (r"(?:password|passwd|pwd|pass|passcode|pw|pin|secret|token|api_?key|key|"
                r"auth\w*|signature|sig|session|sid|cred\w*|code|user|username|usr|login|"
                r"account)")
# Query parameters that select a camera's stream and hold nothing secret: the only
# ones a name keeps (two channels of one camera often differ only there).
_SELECTOR_KEYS = frozenset({"channel", "ch", "chn", "subtype", "stream", "streamtype", "profile",
                            "camera", "cam", "id", "resolution", "res", "fps", "codec", "quality",
                            "videocodec", "stream_id", "track", "unicast", "multicast"})
_SECRET_PARAM = re.compile(r"(?P<key>[?&;]" + _SECRET_KEYS + r"=)[^&;#\s'\"]*", re.IGNORECASE)
_SECRET_PARAM_WHOLE = re.compile(r"(?P<key>[?&;]" + _SECRET_KEYS + r"=)[^&;#]*", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]+")
_MAX_NAME = 100


def mask_credentials(text: str) -> str:
    """Replace the credentials of every URL inside ``text`` with ``***``.

    ``rtsp://user:pass@host/x`` and ``rtsp://user@host/x`` become
    ``rtsp://***@host/x``; the user info runs to the last "@" before white
    space or a quote (``rtsp://dave:p@ss/w0rd@host/x`` gives
    ``rtsp://***@host/x``), or, for a URL with none there, over white space
    and quotes to the last "@" of the line that a host follows
    (``rtsp://dave:s3cr3t @host/x``); the values of secret-looking query parameters
    (``password=``, ``token=``, ``auth...=`` and the like) become ``***``.
    Works on URLs embedded in longer text, such as FFmpeg error messages
    that quote the URL. Text without URLs comes back unchanged. For a URL
    the user gave, whole, ``mask_url`` is the exact one.

    Args:
        text: Any string.

    Returns:
        ``text`` with credentials masked.
    """
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", masked)


def mask_url(url: str) -> str:
    """Mask the credentials of one URL given whole (a source, an option's value).

    Unlike ``mask_credentials``, which finds URLs inside longer text, this
    knows where the URL ends: the user info runs to the last "@" of the
    whole string, so white space, quotes or line breaks in a user name or
    password (``rtsp://dave:s3cr3t @host/x``) are masked with it, as is
    everything before the last "@" of a value written without ``scheme://``
    (``dave:pw@host``, ``rtsp:/dave:pw@host``). Secret query parameters are
    masked to the next ``&``, ``;`` or ``#``. Meant for every message about
    a URL the user gave, whatever is wrong with it.

    Args:
        url: The URL as the user wrote it.

    Returns:
        ``url`` with its user info replaced by ``***`` (``rtsp://***@host/x``,
        ``***@host``) and secret parameter values by ``***``.
    """
    scheme, userinfo, rest = split_userinfo(url)
    if userinfo is not None:
        url = f"{scheme}{MASK}@{rest}"
    elif not scheme and "@" in url:
        typo = _SCHEME_TYPO.match(url)  # rtsp:/ -- kept, to show the user the typo
        url = f"{typo.group() if typo else ''}{MASK}@{url.rpartition('@')[2]}"
    url = _SECRET_PARAM_WHOLE.sub(lambda m: f"{m['key']}{MASK}", url)
    return mask_credentials(url)


def display_name(url: str) -> str:
    """A short, safe name for a stream: host, port and path, no credentials.

    ``rtsp://user:pw@127.0.0.1:8554/cam1`` gives ``127.0.0.1_8554_cam1``.
    Of the query, only well-known stream selectors (``channel``,
    ``subtype``, ``profile``...) are kept, since two channels of one camera
    often differ only there; any other parameter might hold a secret. Only letters, digits, ``.``, ``-`` and ``_`` remain,
    so the name is usable as a file name; a long one is cut and given a
    short hash of the full name so that names stay distinct.

    Args:
        url: A stream URL, or any other source spec (``/dev/video0``,
            ``lavfi:testsrc2``, ``0``).

    Returns:
        A non-empty name such as ``127.0.0.1_8554_cam1`` or ``dev_video0``.
    """
    parts = [_strip_credentials(url)]
    if _SCHEME.match(url):
        scheme, _, rest = split_userinfo(url)
        split = _urlsplit(f"{scheme}{rest}")
        query = [f"{k}-{v}" for k, v in parse_qsl(split.query) if k.lower() in _SELECTOR_KEYS]
        host = (_hostname(split) or "").replace(":", "-")  # IPv6
        parts = [host, str(_port(split) or ""), unquote(split.path), *query]
    name = "_".join(p for p in (_UNSAFE.sub("_", part).strip("_.") for part in parts) if p)
    name = re.sub(r"_+", "_", name) or "source"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:_MAX_NAME - 9]}_{digest}"
    return name


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """Split ``scheme://userinfo@rest`` at the LAST "@" of the URL.

    This is the widest reading of the user info: a password holding an
    unencoded "@", "/", "?", "#" or ":" stays whole in ``userinfo`` and never
    reaches ``rest``. (FFmpeg ends the authority at the first "/", "?" or
    "#": when ``userinfo`` holds one of those, FFmpeg would connect to a host
    read out of the password, so such a URL is ambiguous and should be
    rejected; see ``stages.sources.spec.LiveSpec.parse``.)

    Args:
        url: A URL such as ``rtsp://user:pass@host:554/path``.

    Returns:
        ``(scheme_with_slashes, userinfo or None, rest)``, e.g.
        ``("rtsp://", "user:pass", "host:554/path")``; for a string without
        ``scheme://`` the scheme is ``""`` and everything is ``rest``.
    """
    match = _SCHEME.match(url)
    if match is None:
        return "", None, url
    scheme, after = match.group(), url[match.end():]
    userinfo, at, rest = after.rpartition("@")
    return (scheme, userinfo, rest) if at else (scheme, None, after)


class CredentialFilter(logging.Filter):
    """A logging filter that masks credentials in every record it passes.

    Attach it to a handler (``handler.addFilter(CredentialFilter())``) so that
    messages from other libraries (FFmpeg's, forwarded by ``av.logging``)
    cannot leak a password either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _strip_credentials(spec: str) -> str:
    return mask_credentials(spec).replace(f"{MASK}@", "")


def _urlsplit(url: str):
    try:
        return urlsplit(url)
    except ValueError:  # a broken IPv6 bracket: keep the text, lose the structure
        return urlsplit(url.replace("[", "_").replace("]", "_"))


def _hostname(split) -> str | None:
    try:
        return split.hostname
    except ValueError:
        return None


def _port(split) -> int | None:
    try:
        return split.port
    except ValueError:
        return None
