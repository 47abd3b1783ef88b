"""Stop signals: children never run our handlers (issue 11, item 10).

Each test runs a small script in a subprocess that installs the handlers,
forks, and sends SIGTERM to the child: the child must die of it, as any
process with default handlers does, and never say "stopping".
"""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import ctypes, os, select, signal, sys
    from pipeline.signals import StopOnSignals

    def fork():
        if sys.argv[1] == "os.fork":
            return os.fork()
        # as C code forks (no Python fork hooks run); PyDLL keeps the GIL across the call
        return ctypes.PyDLL(None).fork()

    with StopOnSignals() as stop:
        stop.attach(lambda: print("parent's job cancelled", flush=True))
        r, w = os.pipe()
        pid = fork()
        if pid == 0:
            os.close(r)
            handler = signal.getsignal(signal.SIGTERM)
            os.write(w, b"default\\n" if handler == signal.SIG_DFL else b"inherited\\n")
            select.select([], [], [], 20)  # only a signal ends this wait early
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as child:
            handlers = child.readline().strip()
            os.kill(pid, signal.SIGTERM)
            child.read()  # EOF: the child is gone
        _, status = os.waitpid(pid, 0)
        ended = (f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
                 else f"exited {os.WEXITSTATUS(status)}")
        print(f"child handlers: {handlers}; child {ended}; parent received {stop.received}")
""")


def _fork_and_signal_the_child(tmp_path: Path, how: str) -> subprocess.CompletedProcess:
    script = tmp_path / "fork_child.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), how], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_an_os_fork_child_gets_the_default_handlers_back(tmp_path):
    done = _fork_and_signal_the_child(tmp_path, "os.fork")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "child handlers: default; child killed by SIGTERM; parent received None\n"
    assert "stopping" not in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="forks through the C library directly")
def test_a_child_forked_by_c_code_re_raises_the_signal_with_the_default_action(tmp_path):
    done = _fork_and_signal_the_child(tmp_path, "libc")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "child handlers: inherited; child killed by SIGTERM; parent received None\n"
    assert "stopping" not in done.stderr


# -- SIGHUP and a borrowed standard error (issue 21, items 9 and 11) -----------------------------

HUP_SCRIPT = textwrap.dedent("""
    import os, signal, sys, tempfile, threading
    from pipeline.signals import StopOnSignals

    def name(handler):
        return {signal.SIG_DFL: "default", signal.SIG_IGN: "ignored"}.get(handler, "a handler")

    if sys.argv[1] == "nohup":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cancelled = threading.Event()
    with StopOnSignals() as stop:
        stop.attach(cancelled.set)
        if sys.argv[1] == "captured":  # as TensorFlow's start-up captures descriptor 2
            capture = tempfile.TemporaryFile()
            os.dup2(capture.fileno(), 2)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGHUP)  # handled right here
        print(f"received {stop.received}; cancelled {cancelled.wait(20 if stop.received else 0)}; "
              f"SIGHUP: {name(signal.getsignal(signal.SIGHUP))}", flush=True)
    print(f"after: {name(signal.getsignal(signal.SIGHUP))}", flush=True)
    os._exit(0)  # before the deadline ends the process: only the lines matter here
""")


def _hup(tmp_path: Path, how: str) -> subprocess.CompletedProcess:
    script = tmp_path / "hup.py"
    script.write_text(HUP_SCRIPT)
    return subprocess.run([sys.executable, str(script), how], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_stops_the_run_as_sigterm_does(tmp_path):
    done = _hup(tmp_path, "plain")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["received 1; cancelled True; SIGHUP: a handler",
                                        "after: default"]
    assert done.stderr == "posestream: SIGHUP: stopping, keeping what is done\n"


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_under_nohup_sighup_stays_ignored(tmp_path):
    done = _hup(tmp_path, "nohup")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["received None; cancelled False; SIGHUP: ignored",
                                        "after: ignored"]
    assert done.stderr == ""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_the_stop_lines_reach_the_stderr_the_run_began_with(tmp_path):
    done = _hup(tmp_path, "captured")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "posestream: SIGHUP: stopping, keeping what is done\n"


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_a_forked_child_gets_the_default_sighup_back(tmp_path):
    script = tmp_path / "fork_hup.py"
    script.write_text(SCRIPT.replace("signal.SIGTERM", "signal.SIGHUP"))
    done = subprocess.run([sys.executable, str(script), "os.fork"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "child handlers: default; child killed by SIGHUP; parent received None\n"
    assert "stopping" not in done.stderr


# -- a signal another thread catches (the kernel may hand it to any thread) ----------------------

STOLEN_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    from pipeline.signals import StopOnSignals

    def main_thread_asleep():  # in the kernel, twice 50 ms apart: not merely waiting for the GIL
        main = threading.main_thread()
        for _ in range(2):
            stat = open(f"/proc/self/task/{main.native_id}/stat").read()
            if stat.rsplit(")", 1)[1].split()[0] != "S":
                return False
            time.sleep(0.05)
        return True

    def catch_it():  # as a thread starting up does, before the woken main thread runs
        while not blocking.is_set() or not main_thread_asleep():
            time.sleep(0.02)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        signalled.append(time.monotonic())

    release = threading.Event()
    r, w = os.pipe()
    holder = threading.Thread(target=release.wait)
    holder.start()
    def unblock():
        release.set()
        os.write(w, b"x")
    blocking, signalled = threading.Event(), []
    threading.Timer(10, unblock).start()  # if the stop never comes
    with StopOnSignals() as stop:
        stop.attach(unblock)
        threading.Thread(target=catch_it, daemon=True).start()
        blocking.set()
        {"wait": release.wait, "join": holder.join, "read": lambda: os.read(r, 1)}[sys.argv[1]]()
        took = time.monotonic() - signalled[0]
        print(f"received {stop.received}; returned {'within 5 s' if took < 5 else f'{took:.1f} s'} "
              "after the signal", flush=True)
        os._exit(0)  # before the deadline ends the process: only the lines matter here
""")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the main thread wait")
@pytest.mark.parametrize("blocked_in", ["wait", "join", "read"])
def test_a_signal_another_thread_catches_is_acted_on_whatever_the_main_thread_waits_in(tmp_path,
                                                                                        blocked_in):
    script = tmp_path / "stolen.py"
    script.write_text(STOLEN_SCRIPT)
    done = subprocess.run([sys.executable, str(script), blocked_in], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "received 15; returned within 5 s after the signal\n"
    assert done.stderr == "posestream: SIGTERM: stopping, keeping what is done\n"
