"""Paths the user names for outputs are written as what is there asks (issue 21, item 1).

``--summary-json`` (on the command line or in a ``--config`` file, after a file
run or a batch) and ``-o``: a link is followed, a FIFO or a device written in
place, a folder or a socket refused in one line before the run starts. Every
node is made in ``tmp_path`` (tests/support/nodes.py): never a system path.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import run_stream
from stages.outputs.sample import make_test_clip
from tests.support.nodes import FULL, NULL, FifoReader, char_device, unix_socket

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = run_stream.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(params=["file", "batch"])
def inputs(request, tmp_path) -> list[Path]:
    """One clip (a file run) or two (a batch)."""
    count = 1 if request.param == "file" else 2
    return [make_test_clip(tmp_path / f"c{i}.mp4", frames=2, size=(64, 48)) for i in range(count)]


def _mode(summary: dict) -> str:
    return "batch" if "files" in summary else "file"


def test_summary_json_to_a_fifo_reaches_its_reader_and_the_fifo_stays(tmp_path, capsys, inputs):
    with FifoReader(tmp_path / "fifo") as reader:
        code, out, err = _cli(capsys, *inputs, "-o", tmp_path / "out", *FAKE,
                              "--summary-json", reader.path)
        assert code == 0, err
        summary = json.loads(reader.wait())
        assert stat.S_ISFIFO(os.lstat(reader.path).st_mode)
    assert _mode(summary) == ("file" if len(inputs) == 1 else "batch")


def test_summary_json_to_a_device_copy_keeps_the_device(tmp_path, capsys, inputs):
    device = char_device(tmp_path / "null", NULL)
    rdev = os.lstat(device).st_rdev
    code, out, err = _cli(capsys, *inputs, "-o", tmp_path / "out", *FAKE, "--summary-json", device)
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(device).st_mode) and os.lstat(device).st_rdev == rdev


def test_summary_json_to_a_full_device_fails_in_one_line_and_keeps_it(tmp_path, capsys, inputs):
    device = char_device(tmp_path / "full", FULL)
    code, out, err = _cli(capsys, *inputs, "-o", tmp_path / "out", *FAKE, "--summary-json", device)
    assert code == 1 and err.strip().splitlines() == [
        f"posestream: error: {device}: cannot write the summary (No space left on device)"], err
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert (tmp_path / "out" / "c0.jsonl").is_file()  # the run's outputs are all there


def test_summary_json_through_a_symlink_writes_its_target(tmp_path, capsys, inputs):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "summary.json"
    target.write_text("{}\n")
    link = tmp_path / "summary.json"
    link.symlink_to(target)
    code, out, err = _cli(capsys, *inputs, "-o", tmp_path / "out", *FAKE, "--summary-json", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _mode(json.loads(target.read_text())) == ("file" if len(inputs) == 1 else "batch")


def test_a_summary_json_named_in_a_config_file_is_treated_alike(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    with FifoReader(tmp_path / "fifo") as reader:
        config = tmp_path / "run.toml"
        config.write_text(f'summary-json = "{reader.path}"\n')
        code, out, err = _cli(capsys, "--config", config, clip, "-o", tmp_path / "out", *FAKE)
        assert code == 0, err
        assert json.loads(reader.wait())["frames_read"] == 2
        assert stat.S_ISFIFO(os.lstat(reader.path).st_mode)


@pytest.mark.parametrize("what", ["a socket", "a folder"])
def test_summary_json_at_a_socket_or_folder_is_refused_before_the_run(tmp_path, capsys, what):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    node = tmp_path / "node"
    unix_socket(node) if what == "a socket" else node.mkdir()
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", *FAKE, "--summary-json", node)
    assert code == 1 and err.strip().splitlines() == [
        f"posestream: error: --summary-json {node}: is {what}; give a file path"], err
    assert not (tmp_path / "out").exists()  # refused before the run started
    assert stat.S_ISSOCK(os.lstat(node).st_mode) if what == "a socket" else node.is_dir()


def test_a_symlinked_outdir_is_followed(tmp_path, capsys, inputs):
    real = tmp_path / "disk" / "out"
    real.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(real)
    code, out, err = _cli(capsys, *inputs, "-o", link, *FAKE)
    assert code == 0, err
    assert link.is_symlink() and (real / "c0.jsonl").is_file()


@pytest.mark.parametrize("what", ["a FIFO", "a character device", "a regular file",
                                  "a symbolic link to a missing"])
def test_an_outdir_that_is_no_folder_is_refused_before_the_run(tmp_path, capsys, what):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    out = tmp_path / "out"
    if what == "a FIFO":
        os.mkfifo(out)
    elif what == "a character device":
        char_device(out, NULL)
    elif what == "a regular file":
        out.write_text("mine\n")
    else:
        out.symlink_to(tmp_path / "gone")
    before = os.lstat(out)
    code, _, err = _cli(capsys, clip, "-o", out, *FAKE)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"posestream: error: -o {out}: is {what}") and "not a folder" in err, err
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino, after.st_size) == (before.st_mode, before.st_ino, before.st_size)
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "out"]


@pytest.mark.parametrize("stdout", ["pipe", "file"])
def test_summary_json_through_a_descriptor_link_goes_to_that_open_file(tmp_path, stdout):
    """A link to /proc/self/fd/1 (what /dev/stdout is) names the process's stdout: a
    pipe with no name to follow, or a file the shell opened, written at its end."""
    clip = make_test_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    link = tmp_path / "to-stdout"
    link.symlink_to("/proc/self/fd/1")
    command = [sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o", str(tmp_path / "out"),
               *FAKE, "--summary-json", str(link)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if stdout == "pipe":
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        printed = done.stdout
    else:
        with open(tmp_path / "printed.txt", "w") as file:
            done = subprocess.run(command, env=env, stdout=file, stderr=subprocess.PIPE, text=True,
                                  timeout=120)
        printed = (tmp_path / "printed.txt").read_text()
    assert done.returncode == 0, done.stderr
    summary, end = json.JSONDecoder().raw_decode(printed)  # the JSON first, then the report
    assert summary["frames_written"] == 2
    assert printed[end:].lstrip("\n").startswith(f"done: {clip}: 2 frames read"), printed
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
