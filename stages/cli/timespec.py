"""Points in time given on the command line: ``--start``/``--end``.

Accepted forms: plain seconds (``12``, ``12.5``) or a clock
``[HH:]MM:SS[.fraction]`` (``1:02.5``, ``01:02:03.250``), as ``ffmpeg -ss``
takes them. In the clock form minutes and seconds are below 60; hours may be
any whole number. Negative times, signs, exponents, ``inf``/``nan`` and empty
text are refused.
"""

from __future__ import annotations

import re

from stages.errors import InputError

_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
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
    if _SECONDS.fullmatch(shown):
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
