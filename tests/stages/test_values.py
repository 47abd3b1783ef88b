"""stages.values: durations and sizes (--retain, --max-disk), times (--start/--end)."""

from __future__ import annotations

import pytest

from stages.errors import InputError
from stages.values import parse_duration, parse_size, parse_time


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200),
                                          ("7d", 604800), ("1w", 604800), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text, "--retain") == seconds


@pytest.mark.parametrize("text,size", [("1048576", 1 << 20), ("64K", 64 << 10), ("500M", 500 << 20),
                                       ("50G", 50 << 30), ("2T", 2 << 40), ("1.5G", 3 << 29),
                                       ("10MB", 10 << 20), ("10MiB", 10 << 20), ("100b", 100)])
def test_sizes(text, size):
    assert parse_size(text, "--max-disk") == size


@pytest.mark.parametrize("text", ["", "0", "0d", "-1d", "7 days", "7x", "inf", "nan", "d"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(InputError, match=r"^--retain "):
        parse_duration(text, "--retain")


@pytest.mark.parametrize("text", ["", "0", "-5G", "5Q", "G", "1e9"])
def test_bad_sizes_name_the_option(text):
    with pytest.raises(InputError, match=r"^--max-disk "):
        parse_size(text, "--max-disk")

@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("12", 12.0), ("12.5", 12.5), (".5", 0.5), ("3.", 3.0), (" 7 ", 7.0),
    ("1:02.5", 62.5), ("01:02", 62.0), ("0:59.999", 59.999), ("01:02:03.250", 3723.25),
    ("100:00:00", 360000.0), ("0:00:00", 0.0),
])
def test_accepted_forms(text, seconds):
    assert parse_time(text, "--start") == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("text", [
    "", " ", "-1", "-0:01", "+3", "1e3", "inf", "nan", "abc", "1:2:3:4", ":30", "1:", "1::2",
    "12s", "1,5", "1:60", "1:59:60", "0:75", "1:02:03.2.5", "--5",
])
def test_refused_with_one_line_naming_option_and_text(text):
    with pytest.raises(InputError) as info:
        parse_time(text, "--end")
    message = str(info.value)
    assert message.startswith("--end: ")
    assert "\n" not in message
    assert repr(text) in message


def test_not_text_is_refused():
    with pytest.raises(InputError, match="--start"):
        parse_time(None, "--start")  # type: ignore[arg-type]
