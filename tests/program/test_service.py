"""The systemd unit template, its installer and its example config (scripts/systemd/).

``install.sh`` writes the unit with the path of the posestream it finds or is
given (into a temporary folder here, without systemctl); ``systemd-analyze
verify`` checks that unit as systemd would load it, also that the command it
starts exists; its stop settings are checked against the CLI's own stop
deadline; the example config goes through the CLI's own loader and checks,
and runs.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
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
INSTALL = ROOT / "scripts" / "systemd" / "install.sh"
EXAMPLE = ROOT / "scripts" / "systemd" / "example.toml"
CONFIG_DIR = "/etc/posestream"
EXPOSURE_LIMIT = 40  # systemd-analyze security's scale x 10: 4.0 and under is "OK"
FLUSH_SECONDS = 0.2  # pipeline.signals flushes stdout/stderr this long before ending


def _executable() -> str:
    """This environment's console script, else the interpreter (both exist)."""
    script = Path(sys.executable).parent / "posestream"
    return str(script) if script.exists() else sys.executable


def _install(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run install.sh with ``args``, writing the unit into ``tmp_path / "units"``."""
    return subprocess.run(["bash", str(INSTALL), "-d", str(tmp_path / "units"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def _installed(tmp_path: Path, executable: str | None = None) -> str:
    """The unit as install.sh writes it for ``executable`` (default: this environment's)."""
    done = _install(tmp_path, "-e", executable or _executable(), "-c", CONFIG_DIR)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "units" / "posestream@.service").read_text()


def _instance(tmp_path: Path, text: str) -> Path:
    """The unit as ``posestream@cam.service`` in ``tmp_path``, with ``text`` as its content."""
    path = tmp_path / "posestream@cam.service"
    path.write_text(text)
    return path


def _exec_start(text: str) -> list[str]:
    """The words of a unit's ExecStart."""
    return shlex.split(_service_section(text)["ExecStart"])


def _verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (systemd's own tool)")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)


def _about(unit: Path, output: str) -> list[str]:
    """The lines of ``output`` about ``unit`` (verify may also talk of other units)."""
    return [line for line in output.splitlines() if unit.name in line or str(unit) in line]


def _service_section(text: str | None = None) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text() if text is None else text)
    return parser["Service"]


def _seconds(value: str) -> float:
    """A systemd time span of one unit (``30s``, ``1min``, ``30``) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value.strip())
    assert match, f"unexpected time span {value!r}"
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * 60 if unit in ("min", "m") else number


def test_unit_instance_verifies_without_warnings(tmp_path):
    unit = _instance(tmp_path, _installed(tmp_path))
    done = _verify(unit)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert _about(unit, output) == [], output


def test_unit_exposure_is_rated_ok(tmp_path):
    """systemd's own rating of the sandbox: at most 4.0 of 10 ("OK"; 5.8 without the
    capability, syscall-architecture, /proc and IPC settings)."""
    unit = _instance(tmp_path, _installed(tmp_path))
    _verify(unit)  # skips without systemd-analyze
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                           f"--threshold={EXPOSURE_LIMIT}", str(unit)],
                          capture_output=True, text=True, timeout=60)
    if "unrecognized option" in done.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout[-600:] + done.stderr


def test_verify_would_report_a_bad_unit(tmp_path):
    """The check above can fail: verify names an unknown key and a missing command."""
    text = _installed(tmp_path)
    unit = _instance(tmp_path, text.replace("[Service]\n", "[Service]\nNoSuchKey=1\n"))
    done = _verify(unit)
    assert "NoSuchKey" in done.stdout + done.stderr
    gone = str(tmp_path / "gone" / "posestream")
    unit = _instance(tmp_path, text.replace(f"ExecStart={_executable()} ", f"ExecStart={gone} "))
    done = _verify(unit)
    assert done.returncode != 0 and gone in done.stdout + done.stderr


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


def test_unit_writes_only_its_state_directory(tmp_path):
    service = _service_section(_installed(tmp_path))
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "posestream/%i"
    assert "--outdir %S/posestream/%i" in service["ExecStart"]
    assert f"--config {CONFIG_DIR}/%i.toml" in service["ExecStart"]


# -- install.sh: the unit with this machine's posestream in it

def _fake_posestream(folder: Path, interpreter: str = "/usr/bin/python3") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "posestream"
    script.write_text(f"#!{interpreter}\nimport run_stream\n")
    script.chmod(0o755)
    return script


def test_the_installed_unit_starts_the_given_posestream_and_no_fixed_path(tmp_path):
    text = _installed(tmp_path)
    command = _exec_start(text)
    assert command[0] == _executable() and os.access(command[0], os.X_OK)
    assert command[1:] == ["--config", f"{CONFIG_DIR}/%i.toml", "--outdir", "%S/posestream/%i"]
    assert "/opt/posestream" not in text and "@POSESTREAM@" not in text and "@CONFIG_DIR@" not in text
    assert "/opt/posestream" not in UNIT.read_text()  # nor in the template


def test_without_e_the_installer_takes_the_posestream_on_path(tmp_path):
    found = _fake_posestream(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{found.parent}:/usr/bin:/bin"}
    done = _install(tmp_path, "-c", str(tmp_path / "etc"), env=env)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "units" / "posestream@.service").read_text()
    assert _exec_start(text)[:3] == [str(found), "--config", f"{tmp_path}/etc/%i.toml"]
    assert f"wrote {tmp_path}/units/posestream@.service" in done.stdout


def test_a_relative_path_is_made_absolute(tmp_path):
    _fake_posestream(tmp_path / "venv" / "bin")
    done = subprocess.run(["bash", str(INSTALL), "-e", "venv/bin/posestream", "-d", "units"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "units" / "posestream@.service").read_text()
    assert _exec_start(text)[0] == str(tmp_path / "venv" / "bin" / "posestream")


@pytest.mark.parametrize("interpreter,protect", [("/usr/bin/python3", "yes"),
                                                 ("/home/someone/.venv/bin/python", "read-only"),
                                                 ("/root/.pyenv/versions/3.11/bin/python", "read-only")])
def test_a_python_under_a_home_folder_is_not_hidden_from_the_service(tmp_path, interpreter, protect):
    """ProtectHome=yes would hide it: the service could not start (203/EXEC)."""
    text = _installed(tmp_path, str(_fake_posestream(tmp_path / "bin", interpreter)))
    assert _service_section(text)["ProtectHome"] == protect


@pytest.mark.parametrize("name", ["no such", "has space", "per%cent"])
def test_a_missing_or_unquotable_executable_is_refused_and_nothing_written(tmp_path, name):
    executable = tmp_path / name / "posestream"
    if name != "no such":
        _fake_posestream(executable.parent)
    done = _install(tmp_path, "-e", str(executable))
    assert done.returncode == 1 and str(executable) in done.stderr
    assert not (tmp_path / "units").exists()


# -- example.toml: a safe live run as it is, the optional features commented out

OPTIONAL = re.compile(r"# ([a-z][a-z-]*) = (.+)")  # a key to turn on by removing "# "


def _example(tmp_path: Path, text: str | None = None):
    """(parser, args) of the example config (or ``text`` in its place), as the unit runs it."""
    path = EXAMPLE
    if text is not None:
        path = tmp_path / "example.toml"
        path.write_text(text)
    parser = run_stream.build_parser()
    parser.set_defaults(**config_defaults(parser, path))
    return parser, parser.parse_args(["--config", str(path), "--outdir", str(tmp_path)])


def _check_live_run(parser, args) -> None:
    """What run_stream checks of a live run before anything starts (each raises if wrong)."""
    assert args.input and all(is_live(spec) for spec in args.input)
    for spec in args.input:
        validate_live_spec(spec)
    check_options(args, parser, LIVE)
    run_stream._check_run_options(args)
    run_stream._job_config(args)
    run_stream._live_config(args)
    for option, value in (("--http", args.http), ("--preview", args.preview)):
        if value is not None:
            parse_bind(value, option)
    if args.mqtt is not None:
        parse_broker(args.mqtt)


def test_example_config_is_a_safe_live_run_as_it_is(tmp_path):
    parser, args = _example(tmp_path)
    _check_live_run(parser, args)
    assert len(args.input) == 1 and args.sources is None  # one camera to replace
    # nothing that needs another program or fills a disk faster: annotated segments, kept bounded
    assert (args.record, args.mqtt, args.preview) == ("annotated", None, None)
    assert parse_duration(args.retain, "--retain") == 7 * 86400
    assert parse_size(args.max_disk, "--max-disk") == 10 * 1024 ** 3
    assert parse_bind(args.http, "--http") == ("127.0.0.1", 9310)  # this machine only
    assert args.outdir == tmp_path


def test_each_optional_feature_is_there_commented_out_and_valid_once_turned_on(tmp_path):
    lines = EXAMPLE.read_text().splitlines()
    optional = {m[1]: i for i, line in enumerate(lines) if (m := OPTIONAL.fullmatch(line))}
    assert {"record", "mqtt", "sources", "format", "live-log-size", "max-fps", "preview",
            "workers", "resolution"} <= set(optional), sorted(optional)
    for key, i in optional.items():
        said = lines[i - 1]  # the line above says what it does
        assert said.startswith("# ") and not OPTIONAL.fullmatch(said) and len(said) > 20, key
        turned_on = [*lines[:i], lines[i][2:], *lines[i + 1:]]
        parser, args = _example(tmp_path, "\n".join(turned_on) + "\n")
        assert parser.get_default(parser._option_string_actions[f"--{key}"].dest) is not None
        _check_live_run(parser, args)
    _, args = _example(tmp_path, EXAMPLE.read_text().replace('# record = "raw"', 'record = "raw"'))
    assert args.record == "raw"
    _, args = _example(tmp_path, EXAMPLE.read_text().replace("# mqtt = ", "mqtt = "))
    broker = parse_broker(args.mqtt)
    assert (broker.host, broker.port, broker.prefix) == ("127.0.0.1", 1883, "posestream")


def test_example_config_runs_as_it_is_on_a_test_camera(tmp_path):
    """posestream with the example config, its camera and port swapped for a test pattern
    and a free port: it starts, reports healthy, and stops on SIGTERM as under systemd."""
    from tests.support.status_fixtures import WAIT, get, scrape, wait_until

    cmd = [sys.executable, str(ROOT / "run_stream.py"), "--config", str(EXAMPLE),
           "--outdir", str(tmp_path / "out"), "--http", "127.0.0.1:0",
           "--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48",
           "lavfi:testsrc2=size=64x48:rate=25,realtime"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = ""
        while not line.startswith("status: ") and proc.poll() is None:
            line = proc.stderr.readline()
        assert line.startswith("status: "), proc.communicate(timeout=WAIT)
        url = line.split()[1]
        assert wait_until(lambda: get(url, "/healthz")[0] == 200, WAIT * 3)
        assert wait_until(lambda: sum(v for (name, _), v in scrape(url).items()
                                      if name == "posestream_frames_total") >= 10, WAIT * 3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    segments = sorted(p.suffix for p in (tmp_path / "out").glob("*/*-1.*"))
    assert segments == [".jsonl", ".mkv"], segments  # annotated video and its keypoint log
    assert ": stopped, " in out
