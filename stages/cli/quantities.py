"""Durations and sizes given on the command line: ``--retain 7d``, ``--max-disk 50G``.

Durations: a number with a unit, ``s``, ``m``, ``h``, ``d`` or ``w``
(``90s``, ``30m``, ``12h``, ``7d``, ``1.5h``); a bare number is seconds.
Sizes: a number of bytes with an optional binary unit, ``K``, ``M``, ``G``
or ``T`` (powers of 1024; ``KB``/``KiB`` forms too): ``50G``, ``500M``,
``1.5G``. Zero, negative numbers, ``inf``/``nan`` and unknown units are refused.
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
