"""scripts/install.sh's options, and the systemd installer finding what it installed (fast).

The whole install, for real, is ``test_wheel.py`` (slow).
"""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install.sh"
SYSTEMD_INSTALL = ROOT / "scripts" / "systemd" / "install.sh"


def _run(script: Path, *args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


def test_usage_names_the_default_place_and_the_extras():
    done = _run(INSTALL, "-h")
    assert done.returncode == 0
    assert "~/.local/share}/posestream/venv" in done.stdout
    assert "mqtt, cluster, parquet" in done.stdout and "-m " in done.stdout


def test_an_unknown_extra_is_refused_before_anything_is_made(tmp_path):
    done = _run(INSTALL, "-x", "mqtt,tset", str(tmp_path / "venv"))
    assert done.returncode == 1
    assert "-x tset: no such extra (offered: cluster mqtt parquet" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_the_test_extra_is_not_offered_to_users(tmp_path):
    done = _run(INSTALL, "-x", "test", str(tmp_path / "venv"))
    assert done.returncode == 1 and "-x test: no such extra" in done.stderr


def test_two_places_are_a_usage_error(tmp_path):
    done = _run(INSTALL, str(tmp_path / "a"), str(tmp_path / "b"))
    assert done.returncode == 2 and "usage: install.sh" in done.stderr
    assert not (tmp_path / "a").exists()


def test_the_systemd_unit_takes_the_posestream_install_sh_made_by_default(tmp_path):
    home = tmp_path / "home"
    script = home / ".local" / "share" / "posestream" / "venv" / "bin" / "posestream"
    script.parent.mkdir(parents=True)
    script.write_text("#!/usr/bin/python3\nimport run_stream\n")
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    env.update(HOME=str(home), PATH="/usr/bin:/bin")  # no posestream on PATH
    done = _run(SYSTEMD_INSTALL, "-d", str(tmp_path / "units"), "-c", "/etc/posestream", env=env)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "units" / "posestream@.service").read_text()
    assert f"\nExecStart={script} --config /etc/posestream/%i.toml" in unit
