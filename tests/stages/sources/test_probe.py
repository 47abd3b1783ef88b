"""What a file's name and metadata say before it is decoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.sources.probe import declared_frames, is_image


@pytest.mark.parametrize(("path", "image"), [
    ("a.jpg", True), ("a.JPEG", True), ("dir/a.png", True), (Path("a.Tiff"), True),
    ("a.webp", True), ("a.bmp", True), ("a.tif", True),
    ("a.mp4", False), ("a.jpg.mp4", False), ("jpg", False), ("a", False), (".png", False),
])
def test_is_image_reads_the_extension_only(path, image):
    assert is_image(path) is image


def test_an_image_by_name_declares_one_frame_unopened(tmp_path):
    assert declared_frames(tmp_path / "missing.JPG") == 1  # never opened
