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
