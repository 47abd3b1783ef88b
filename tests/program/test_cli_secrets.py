"""No password a user gave in a URL reaches stdout, stderr or the log, whatever is wrong
with the URL, from the command line or from a ``--config`` file (issue 21, items 5 and 21).

Every case fails before any connection or model (the fake backend stands in).
"""

from __future__ import annotations

import json
import logging

import pytest

import run_stream

FAKE = ("--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48")
LAVFI = "lavfi:testsrc2=size=64x48:rate=5"
SECRETS = ("s3cr3t", "s3%20cr3t", "cr/3t", "dave", "da ve")

LIVE = [
    "rtsp://dave:s3cr3t @127.0.0.1/x",  # space in the password
    "rtsp://da ve:s3cr3t@127.0.0.1/x",  # space in the user
    "rtsp://dave:s3cr3t@127.0.0.1:99999/x",  # bad port
    "rtsp://dave:s3cr3t@[::1/x",  # bad IPv6 bracket
    "rtsp://dave:s3%20cr3t@[::1/x",  # percent-escapes
    "rtsp://dave:s3@cr/3t@127.0.0.1/x",  # "@" and "/" in the password
    "http://dave:s3'cr3t @127.0.0.1:8080/v.mjpg",
]
MQTT = [
    ("mqtt://dave:s3cr3t@[::1/prefix", "broken IPv6 host"),
    ("mqtt://dave:s3cr3t @127.0.0.1/prefix", "white space"),
    ("mqtt://da ve:s3cr3t@127.0.0.1/prefix", "white space"),
    ("mqtt://dave:s3%20cr3t@127.0.0.1:99999/prefix", "port"),
    ("mqtt://dave:s3@cr/3t@[::1/prefix", "broken IPv6 host"),
]


def _run(capsys, caplog, *args) -> str:
    """Run the command; return its one error line, checked for secrets everywhere."""
    with caplog.at_level(logging.DEBUG):
        code = run_stream.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code != 0
    for secret in SECRETS:
        for where, text in (("stdout", out), ("stderr", err), ("log", caplog.text)):
            assert secret not in text, f"{secret!r} on {where}: {text!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posestream: error: "), err
    return lines[0]


def _toml(path, **values) -> str:
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


@pytest.mark.parametrize("url", LIVE)
def test_a_bad_live_source_url_never_shows_its_password(url, tmp_path, capsys, caplog):
    line = _run(capsys, caplog, url, "-o", tmp_path / "out", *FAKE)
    assert "://***@" in line
    line = _run(capsys, caplog, "--config", _toml(tmp_path / "c.toml", input=url),
                "-o", tmp_path / "out", *FAKE)
    assert "://***@" in line


@pytest.mark.parametrize(("url", "why"), MQTT)
def test_a_bad_mqtt_url_names_the_option_and_never_shows_its_password(url, why, tmp_path,
                                                                      capsys, caplog):
    line = _run(capsys, caplog, LAVFI, "--mqtt", url, "-o", tmp_path / "out", *FAKE)
    assert line.startswith("posestream: error: --mqtt mqtt://***@") and why in line
    config = _toml(tmp_path / "c.toml", input=LAVFI, mqtt=url)
    line = _run(capsys, caplog, "--config", config, "-o", tmp_path / "out", *FAKE)
    assert line.startswith("posestream: error: --mqtt mqtt://***@") and why in line


@pytest.mark.parametrize("option", ["--http", "--preview"])
def test_a_url_given_as_a_bind_address_is_masked(option, tmp_path, capsys, caplog):
    line = _run(capsys, caplog, LAVFI, option, "http://da ve:s3cr3t@127.0.0.1:8080/x",
                "-o", tmp_path / "out", *FAKE)
    assert line.startswith(f"posestream: error: {option} 'http://***@127.0.0.1:8080/x'")


def test_a_url_of_the_wrong_type_in_the_config_file_is_masked(tmp_path, capsys, caplog):
    config = _toml(tmp_path / "c.toml", mqtt=["mqtt://dave:s3cr3t @127.0.0.1/prefix"])
    line = _run(capsys, caplog, "--config", config)
    assert "'mqtt' must be" in line and "mqtt://***@127.0.0.1/prefix" in line


@pytest.mark.parametrize("line", [
    "rtsp://dave:s3cr3t @127.0.0.1/x",  # white space: the file's NAME column took "@host/x"
    "rtsp://da ve:s3cr3t@127.0.0.1/x",
    "rtsp://dave:s3#cr3t@127.0.0.1/x cam",  # a '#' starts a comment
])
def test_a_url_cut_by_the_sources_file_syntax_never_shows_its_password(line, tmp_path, capsys,
                                                                      caplog):
    sources = tmp_path / "sources.txt"
    sources.write_text(f"{line}\n")
    out = _run(capsys, caplog, "--sources", sources, "-o", tmp_path / "out", *FAKE)
    assert out.startswith(f"posestream: error: --sources {sources}: rtsp://***@127.0.0.1/x")
    out = _run(capsys, caplog, "--config", _toml(tmp_path / "c.toml", sources=str(sources)),
               "-o", tmp_path / "out", *FAKE)
    assert "rtsp://***@127.0.0.1/x" in out
