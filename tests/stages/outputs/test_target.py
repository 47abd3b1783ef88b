"""A named output is written as what is at its path asks (issue 21, item 1).

A regular file or a new path: write-then-rename; a link: its target; a FIFO or
a device: in place; a folder or a socket: refused. Every node here is made in
``tmp_path`` (tests/support/nodes.py): never a system path.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from stages.display.console import write_summary_json
from stages.errors import OutputError
from stages.outputs.target import FILE, STREAM, check_target, output_target, write_whole
from tests.support.nodes import FULL, NULL, FifoReader, char_device, unix_socket

SUMMARY = {"files": [], "totals": {"files": 0}}


def _kind(path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("minor", [NULL, FULL])
def test_a_character_device_is_written_in_place_never_replaced(tmp_path, minor):
    device = char_device(tmp_path / "dev", minor)
    before = os.lstat(device)
    if minor == NULL:
        write_summary_json(device, SUMMARY)
    else:  # a full device says so, as `echo > /dev/full` does
        with pytest.raises(OutputError, match=f"{device}: cannot write the summary "
                                              r"\(No space left on device\)"):
            write_summary_json(device, SUMMARY)
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
    assert sorted(os.listdir(tmp_path)) == ["dev"]  # no partial left beside it


def test_a_fifo_is_written_in_place_and_its_reader_gets_the_json(tmp_path):
    with FifoReader(tmp_path / "fifo") as reader:
        write_summary_json(reader.path, SUMMARY)
        assert json.loads(reader.wait()) == SUMMARY
        assert _kind(reader.path) == stat.S_IFIFO


@pytest.mark.parametrize("existing", [True, False], ids=["target-exists", "dangling"])
def test_a_symlink_is_followed_and_its_target_written(tmp_path, existing):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "real.json"
    if existing:
        target.write_text("old\n")
    link = tmp_path / "summary.json"
    link.symlink_to(target)
    write_summary_json(link, SUMMARY)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == SUMMARY
    assert _kind(target) == stat.S_IFREG
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["real.json"]


def test_a_link_to_a_device_writes_the_device(tmp_path):
    device = char_device(tmp_path / "dev", NULL)
    (tmp_path / "link").symlink_to(device)
    write_summary_json(tmp_path / "link", SUMMARY)
    assert (tmp_path / "link").is_symlink() and _kind(device) == stat.S_IFCHR


def test_a_regular_file_is_replaced_whole_by_a_rename(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("old\n")
    inode = os.lstat(path).st_ino
    assert write_whole(path, b"new\n") == path
    assert path.read_text() == "new\n" and os.lstat(path).st_ino != inode  # a new file, renamed in
    assert os.listdir(tmp_path) == ["s.json"]


@pytest.mark.parametrize("make, what", [(lambda p: p.mkdir(), "a folder"),
                                        (unix_socket, "a socket")])
def test_a_folder_or_a_socket_is_refused_and_left_alone(tmp_path, make, what):
    path = tmp_path / "node"
    make(path)
    kind = _kind(path)
    for call in (check_target, output_target, lambda p: write_whole(p, b"x")):
        with pytest.raises(OutputError, match=f"{path}: is {what}; give a file path"):
            call(path)
    assert _kind(path) == kind


def test_the_kinds_and_the_check_touch_nothing(tmp_path):
    device = char_device(tmp_path / "dev", FULL)
    assert check_target(device).kind == STREAM  # a device is not opened by the check
    assert check_target(tmp_path / "new.json").kind == FILE
    with FifoReader(tmp_path / "fifo") as reader:
        assert check_target(reader.path).kind == STREAM  # nor a FIFO: its reader gets nothing
        assert sorted(os.listdir(tmp_path)) == ["dev", "fifo", "fifo.keep"]
    with pytest.raises(OutputError, match="no folder"):
        check_target(tmp_path / "nope" / "s.json")
