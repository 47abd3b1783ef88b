"""Values written as text, as the command line, the TOML file and the API give
them: durations and sizes (``--retain 7d``, ``--max-disk 50G``), points in
time (``--start 1:02.5``) and picture sizes (``--camera-size 1280x720``).
The settings (``stages.settings``) read them when they are made.

Durations: a number with a unit, ``s``, ``m``, ``h``, ``d`` or ``w``
(``90s``, ``30m``, ``12h``, ``7d``, ``1.5h``); a bare number is seconds.
Sizes: a number of bytes with an optional binary unit, ``K``, ``M``, ``G``
or ``T`` (powers of 1024; ``KB``/``KiB`` forms too): ``50G``, ``500M``,
``1.5G``. Zero, negative numbers, ``inf``/``nan`` and unknown units are refused.

Times: plain seconds (``12``, ``12.5``) or a clock ``[HH:]MM:SS[.fraction]``
(``1:02.5``, ``01:02:03.250``), as ``ffmpeg -ss`` takes them. In the clock
form minutes and seconds are below 60; hours may be any whole number.
Negative times, signs, exponents, ``inf``/``nan`` and empty text are refused.
"""

from __future__ import annotations

import re

from stages.errors import InputError

_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)", re.ASCII)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTES = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str, option: str) -> float:
    """Seconds meant by ``text`` (``7d``, ``12h``, ``30m``, ``90s``, ``90``).

    Raises:
        InputError: Not a positive duration; one line naming ``option``.
    """
    number, unit = _split(text, option, "a duration such as 7d, 12h, 30m or 90s")
    factor = _SECONDS.get(unit.lower())
    if factor is None:
        raise InputError(f"{option} {text!r}: unknown unit {unit!r}; use s, m, h, d or w")
    return number * factor


def parse_size(text: str, option: str) -> int:
    """Bytes meant by ``text`` (``50G``, ``500M``, ``64K``, ``1048576``).

    Raises:
        InputError: Not a positive size; one line naming ``option``.
    """
    number, unit = _split(text, option, "a size such as 50G, 500M or 64K")
    key = unit.lower()
    key = key[:-2] if key.endswith("ib") else key[:-1] if len(key) == 2 and key.endswith("b") else key
    factor = _BYTES.get(key)
    if factor is None:
        raise InputError(f"{option} {text!r}: unknown unit {unit!r}; use K, M, G or T")
    return int(number * factor)


def _split(text: str, option: str, expected: str) -> tuple[float, str]:
    shown = str(text).strip()
    match = _NUMBER_UNIT.fullmatch(shown)
    if match is None or float(match.group(1)) <= 0:
        raise InputError(f"{option} {text!r}: expected {expected}, above zero")
    return float(match.group(1)), match.group(2)


_PLAIN_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d*)?)", re.ASCII)


def parse_time(text: str, option: str) -> float:
    """Seconds meant by ``text``.

    Args:
        text: ``SECONDS`` or ``[HH:]MM:SS[.fraction]``.
        option: The option being parsed (e.g. ``"--start"``), named in errors.

    Returns:
        Seconds, >= 0.

    Raises:
        InputError: ``text`` is not a time of either form, or is out of range;
            one line naming ``option`` and ``text``.
    """
    shown = text.strip() if isinstance(text, str) else text
    if not isinstance(text, str):
        raise InputError(f"{option}: expected a time, got {shown!r}")
    if _PLAIN_SECONDS.fullmatch(shown):
        return float(shown)
    clock = _CLOCK.fullmatch(shown)
    if clock is None:
        raise InputError(f"{option}: {text!r} is not a time; use seconds (12.5) "
                         f"or [HH:]MM:SS[.ms] (1:02.5, 01:02:03.250), not negative")
    hours, minutes, seconds = clock.groups()
    if int(minutes) >= 60 or float(seconds) >= 60:
        raise InputError(f"{option}: {text!r}: minutes and seconds of a clock time "
                         f"must be below 60")
    return 3600 * int(hours or 0) + 60 * int(minutes) + float(seconds)

_PICTURE_SIZE = re.compile(r"(\d+)x(\d+)", re.ASCII)


def parse_picture_size(text: str, option: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)`` (``X`` too, spaces around it ignored).

    Raises:
        InputError: Not of the form WxH; one line naming ``option``.
    """
    match = _PICTURE_SIZE.fullmatch(text.strip().lower())
    if not match:
        raise InputError(f"{option} {text!r}: expected WxH, e.g. 1280x720")
    return int(match[1]), int(match[2])
