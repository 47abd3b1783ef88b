"""The setup scripts and test fixtures that call apt-get install only what is missing.

``apt-get install`` of a package the host already has upgrades it (issue 21:
the test command upgraded the host's glib); ``--no-upgrade`` installs what is
missing and leaves the rest as it is.
"""

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _shell_installs(script: Path) -> list[str]:
    """The ``apt-get install`` commands of a shell script, continuation lines joined."""
    text = script.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if re.search(r"\bapt-get\s+install\b", line) and not line.lstrip().startswith(("#", "echo"))]


def _python_installs(module: Path) -> list[list[str]]:
    """The literal ``["apt-get", "install", ...]`` argument lists of a Python file."""
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if words[:2] == "apt-get install".split():
                found.append(words)
    return found


def test_every_apt_get_install_in_the_scripts_carries_no_upgrade():
    commands = {f"{s.name}: {c}": c for s in sorted((ROOT / "scripts").glob("*.sh"))
                for c in _shell_installs(s)}
    assert len(commands) >= 2  # bootstrap.sh and install_gstreamer.sh
    assert [where for where, c in commands.items() if "--no-upgrade" not in c.split()] == []


def test_every_apt_get_install_in_the_test_fixtures_carries_no_upgrade():
    commands = {f"{m.relative_to(ROOT)}: {c}": c for m in sorted((ROOT / "tests").rglob("*.py"))
                for c in _python_installs(m)}
    assert len(commands) >= 4  # strace, mosquitto, chromium, the display's packages
    assert [where for where, c in commands.items() if "--no-upgrade" not in c] == []


def _fake_tools(bin_dir: Path, log: Path) -> None:
    """ldconfig that lists libGL only; apt-get and sudo that record their arguments."""
    bin_dir.mkdir()
    tools = {
        "ldconfig": "printf '\\tlibGL.so.1 (libc6,x86-64) => /usr/lib/libGL.so.1\\n'",
        "apt-get": f'echo "apt-get $*" >> {log}',
        "sudo": 'exec "$@"',
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


def test_bootstrap_installs_only_the_missing_package_and_upgrades_nothing(tmp_path):
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
    (root / "setup.cfg").write_text("")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\ncat > /dev/null\n")  # the model fetch
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".posestream-installed").write_text("")
    os.utime(root / "setup.cfg", (0, 0))  # the stamp is newer: no pip install
    log = tmp_path / "apt.log"
    _fake_tools(tmp_path / "bin", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    done = subprocess.run(["bash", str(root / "scripts" / "bootstrap.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "installing system packages: libglib2.0-0" in done.stdout
    installs = [line.split() for line in log.read_text().splitlines() if " install " in line]
    assert len(installs) == 1 and "--no-upgrade" in installs[0]
    assert installs[0][-1] == "libglib2.0-0" and "libgl1" not in installs[0]
