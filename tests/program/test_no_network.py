"""A file run opens no network connection and starts no helper process (real model: slow).

The run is traced with ``strace -f``: every connect()/sendto()/sendmsg() to an
IPv4 or IPv6 address (loopback included: a file run has nobody to talk to)
fails the test, and so does a name lookup through nscd. Where the kernel
allows it the run is also put in an empty network namespace, so nothing
leaves the machine even if it tried. The run gets a fresh HOME with no
OpenVINO consent file and no CI variables, where OpenVINO's telemetry
(issue 11, item 10) would send; the last test shows that the trace does see
that telemetry when it is not blocked.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.fetch import cache_dir, fetch_model
from models.registry import DEFAULT_MODEL, get_model

ROOT = Path(__file__).resolve().parents[2]
SYSCALLS = "connect,sendto,sendmsg,clone,clone3,fork,vfork"

pytestmark = pytest.mark.slow


def strace_path() -> str | None:
    """strace, when installed and allowed to trace here (some containers forbid ptrace)."""
    path = shutil.which("strace") or "/usr/bin/strace"
    if not os.access(path, os.X_OK):
        return None
    ok = subprocess.run([path, "-o", os.devnull, "true"], capture_output=True).returncode == 0
    return path if ok else None


@pytest.fixture(scope="session")
def strace() -> str:
    """strace, installed with apt when missing (CI starts from nothing)."""
    if strace_path() is None:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-upgrade", "strace"]):
            try:
                subprocess.run([*sudo, *step], capture_output=True, env=env, timeout=600)
            except (OSError, subprocess.TimeoutExpired):
                break
    path = strace_path()
    if path is None:
        pytest.skip("strace is not installed (apt-get could not install it) or cannot trace here")
    return path


@dataclass(frozen=True, slots=True)
class Trace:
    """What a traced command did, from strace's log."""

    network: list[str]  # calls that address an IPv4/IPv6 host or nscd
    processes: list[str]  # clone/fork calls that made a process, not a thread


def merged_calls(log: str) -> list[str]:
    """strace lines with each call split by another thread's ("unfinished ... resumed") joined."""
    pending: dict[str, str] = {}
    calls = []
    for line in log.splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>")
        elif rest.startswith("<..."):
            calls.append(pending.pop(pid, "") + rest.split("resumed>", 1)[-1])
        else:
            calls.append(rest)
    return calls


def parse(log: str) -> Trace:
    network, processes = [], []
    for call in merged_calls(log):
        name = call.split("(", 1)[0]
        if name in ("connect", "sendto", "sendmsg") and (
                re.search(r"sa_family=AF_INET6?\b", call) or "nscd" in call):
            network.append(call)
        elif name in ("clone", "clone3", "fork", "vfork") and "CLONE_THREAD" not in call:
            processes.append(call)
    return Trace(network, processes)


def offline_prefix() -> list[str]:
    """``unshare -n`` (an empty network namespace) where this user may make one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def traced(strace: str, command: list[str], home: Path, tmp_path: Path,
           timeout: float = 300) -> Trace:
    """Run ``command`` under strace with a telemetry-friendly environment; return its trace."""
    log = tmp_path / "strace.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env.update(HOME=str(home), POSESTREAM_CACHE=str(cache_dir()))
    proc = subprocess.run([*offline_prefix(), strace, "-f", "-qq", "-e", f"trace={SYSCALLS}",
                           "-o", str(log), *command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return parse(log.read_text())


@pytest.fixture(scope="module")
def graph():
    return fetch_model(get_model(DEFAULT_MODEL))  # fetched (if ever) before any trace starts


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def posestream(clip: Path, out: Path, backend: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o", str(out),
            "--resolution", "160x120", "--backend", backend]


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_an_openvino_file_run_connects_nowhere_and_forks_nothing(strace, graph, tiny_clip, home,
                                                                 tmp_path):
    clip = tiny_clip("clip.mp4", frames=3, size=(160, 120))
    trace = traced(strace, posestream(clip, tmp_path / "out", "openvino"), home, tmp_path)
    assert trace.network == []
    assert trace.processes == []  # the telemetry sender was a forked process
    assert (tmp_path / "out" / "clip.jsonl").read_text().count("\n") == 3
    assert not (home / "intel").exists()  # telemetry keeps its client id there


def test_a_tensorflow_file_run_connects_nowhere(strace, graph, tiny_clip, home, tmp_path):
    clip = tiny_clip("clip.mp4", frames=3, size=(160, 120))
    trace = traced(strace, posestream(clip, tmp_path / "out", "tf"), home, tmp_path)
    assert trace.network == []
    assert (tmp_path / "out" / "clip.jsonl").read_text().count("\n") == 3


def test_the_trace_sees_a_connection(strace, home, tmp_path):
    """The detector itself: a UDP connect() to a documentation address (nothing is sent)."""
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    s.connect(('192.0.2.1', 9))\nexcept OSError:\n    pass")
    trace = traced(strace, [sys.executable, "-c", code], home, tmp_path)
    assert len(trace.network) == 1 and "192.0.2.1" in trace.network[0]


@pytest.mark.skipif(importlib.util.find_spec("openvino_telemetry") is None,
                    reason="openvino-telemetry not installed")
@pytest.mark.skipif(not offline_prefix(), reason="cannot make an empty network namespace here")
def test_the_trace_sees_openvino_telemetry_when_it_is_not_blocked(strace, home, tmp_path):
    """Plain ``import openvino`` with no consent file: the sender looks the analytics host up.

    Only in an empty network namespace, so the lookup cannot leave the machine.
    """
    trace = traced(strace, [sys.executable, "-c", "import openvino"], home, tmp_path)
    assert trace.network and trace.processes


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_our_import_of_openvino_keeps_the_telemetry_out(strace, home, tmp_path):
    code = ("import sys; from models.offline import import_openvino; import_openvino(); "
            "assert sys.modules['openvino_telemetry'] is None")
    trace = traced(strace, [sys.executable, "-c", code], home, tmp_path)
    assert trace.network == [] and trace.processes == []
