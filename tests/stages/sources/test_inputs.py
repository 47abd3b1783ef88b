"""Batch inputs: which names are media, and what a directory expands to."""

from __future__ import annotations

import pytest

from stages.sources.inputs import expand_inputs, is_media


@pytest.mark.parametrize(("name", "media"), [
    ("a.mp4", True), ("a.MKV", True), ("a.jpg", True), ("a.PNG", True),
    ("a.txt", False), ("a.json", False), ("a", False),
])
def test_is_media_reads_the_extension(name, media):
    assert is_media(name) is media


def test_a_directory_gives_its_videos_and_images_only(tmp_path):
    for name in ("a.mp4", "b.JPG", "notes.txt", ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"x")
    assert [item.key for item in expand_inputs([str(tmp_path)])] == ["a.mp4", "b.JPG"]


BOM = "\ufeff"


@pytest.mark.parametrize("first", ["a.mp4", "# my clips", "", "café.mp4"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_list_file_that_starts_with_a_bom_gives_its_first_entry(tmp_path, monkeypatch, first,
                                                                  newline):
    for name in ("a.mp4", "b.mp4", "café.mp4"):
        (tmp_path / name).write_bytes(b"x")
    lines = [first, str(tmp_path / "b.mp4"), "b.mp4", "café.mp4"]
    listing = tmp_path / "list.txt"
    listing.write_bytes((BOM + newline.join(lines) + newline).encode("utf-8"))
    monkeypatch.chdir(tmp_path)  # the relative entries are relative to the working folder
    expected = ["a.mp4", "b.mp4", "café.mp4"] if first == "a.mp4" else ["b.mp4", "café.mp4"]
    assert [item.key for item in expand_inputs([], listing)] == expected
