"""--retain and --max-disk values."""

from __future__ import annotations

import pytest

from stages.errors import InputError
from stages.cli.quantities import parse_duration, parse_size


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
