"""The systemd unit template and its example config (scripts/systemd/).

``systemd-analyze verify`` checks the unit as systemd would load it, also
that the command it starts exists; its stop settings are checked against the
CLI's own stop deadline; the example config goes through the CLI's parser.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import run_stream
from pipeline.signals import DEFAULT_GRACE, STOP_SIGNALS
from stages.cli.config_file import config_defaults
from stages.sources.spec import is_live
from stages.options import LIVE, check_options
from stages.publish.mqtt import parse_broker
from stages.serve.server import parse_bind
from stages.values import parse_duration, parse_size
from stages.sources._stream_url import validate_live_spec

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "scripts" / "systemd" / "posestream@.service"
EXAMPLE = ROOT / "scripts" / "systemd" / "example.toml"
INSTALLED_COMMAND = "/opt/posestream/.venv/bin/posestream"
EXPOSURE_LIMIT = 40  # systemd-analyze security's scale x 10: 4.0 and under is "OK"
FLUSH_SECONDS = 0.2  # pipeline.signals flushes stdout/stderr this long before ending


def _executable() -> str:
    """This environment's console script, else the interpreter (both exist)."""
    script = Path(sys.executable).parent / "posestream"
    return str(script) if script.exists() else sys.executable


def _instance(tmp_path: Path, text: str) -> Path:
    """The unit as ``posestream@cam.service`` in ``tmp_path``, with ``text`` as its content."""
    path = tmp_path / "posestream@cam.service"
    path.write_text(text)
    return path


def _verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (systemd's own tool)")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)


def _about(unit: Path, output: str) -> list[str]:
    """The lines of ``output`` about ``unit`` (verify may also talk of other units)."""
    return [line for line in output.splitlines() if unit.name in line or str(unit) in line]


def _service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def _seconds(value: str) -> float:
    """A systemd time span of one unit (``30s``, ``1min``, ``30``) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value.strip())
    assert match, f"unexpected time span {value!r}"
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * 60 if unit in ("min", "m") else number


def test_unit_instance_verifies_without_warnings(tmp_path):
    text = UNIT.read_text()
    assert INSTALLED_COMMAND in text
    unit = _instance(tmp_path, text.replace(INSTALLED_COMMAND, _executable()))
    done = _verify(unit)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert _about(unit, output) == [], output


def test_unit_exposure_is_rated_ok(tmp_path):
    """systemd's own rating of the sandbox: at most 4.0 of 10 ("OK"; 5.8 without the
    capability, syscall-architecture, /proc and IPC settings)."""
    unit = _instance(tmp_path, UNIT.read_text().replace(INSTALLED_COMMAND, _executable()))
    _verify(unit)  # skips without systemd-analyze
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                           f"--threshold={EXPOSURE_LIMIT}", str(unit)],
                          capture_output=True, text=True, timeout=60)
    if "unrecognized option" in done.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout[-600:] + done.stderr


def test_verify_would_report_a_bad_unit(tmp_path):
    """The check above can fail: verify names an unknown key and a missing command."""
    text = UNIT.read_text().replace("[Service]\n", "[Service]\nNoSuchKey=1\n")
    unit = _instance(tmp_path, text)  # the command stays /opt/..., absent here
    done = _verify(unit)
    output = done.stdout + done.stderr
    assert "NoSuchKey" in output
    assert done.returncode != 0 or not Path(INSTALLED_COMMAND).exists(), output


def test_stop_settings_fit_the_cli_stop_deadline():
    service = _service_section()
    assert service["KillSignal"] == "SIGTERM"
    assert "SIGTERM" in [sig.name for sig in STOP_SIGNALS]
    # the CLI ends at most ``grace`` after the signal if the run is stuck, or
    # ``grace`` after the run returned if the process lingers: 2 x grace + flush
    worst_exit = 2 * DEFAULT_GRACE + FLUSH_SECONDS
    timeout = _seconds(service["TimeoutStopSec"])
    assert 5 * worst_exit <= timeout <= 120, (timeout, worst_exit)
    codes = service["SuccessExitStatus"].split()
    assert {str(128 + sig) for sig in STOP_SIGNALS} <= set(codes)
    assert service["Restart"] == "on-failure"
    assert str(run_stream.EXIT_USAGE) in service["RestartPreventExitStatus"].split()


def test_unit_writes_only_its_state_directory():
    service = _service_section()
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "posestream/%i"
    assert "--outdir %S/posestream/%i" in service["ExecStart"]
    assert "--config /etc/posestream/%i.toml" in service["ExecStart"]


def test_example_config_is_a_valid_live_run(tmp_path):
    parser = run_stream.build_parser()
    argv = ["--config", str(EXAMPLE), "--outdir", str(tmp_path)]  # as the unit runs it
    parser.set_defaults(**config_defaults(parser, EXAMPLE))
    args = parser.parse_args(argv)
    assert args.input and all(is_live(spec) for spec in args.input)
    for spec in args.input:
        validate_live_spec(spec)
    check_options(args, parser, LIVE)
    assert args.record == "raw"
    assert parse_duration(args.retain, "--retain") == 7 * 86400
    assert parse_size(args.max_disk, "--max-disk") == 50 * 1024 ** 3
    assert parse_size(args.live_log_size, "--live-log-size") == 64 * 1024 ** 2
    assert parse_bind(args.http, "--http") == ("127.0.0.1", 9310)
    broker = parse_broker(args.mqtt)
    assert (broker.host, broker.port, broker.prefix) == ("127.0.0.1", 1883, "posestream")
    assert args.outdir == tmp_path
