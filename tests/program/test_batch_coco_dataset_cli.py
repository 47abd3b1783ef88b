"""A batch with --format coco writes one COCO dataset over its inputs (issue 12, item 4)."""

from __future__ import annotations

import contextlib
import io
import json

from pycocotools.coco import COCO

import run_stream
from stages.outputs.sample import make_test_clip

ONE_PERSON = ["--backend", "tests.support.fakes:OnePersonBackend", "--resolution", "432x368"]


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_stream.main(argv)
    return code, out.getvalue()


def test_a_coco_batch_writes_the_dataset_and_a_resumed_run_writes_the_same(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    make_test_clip(data / "a.mp4", frames=3, size=(160, 120))
    make_test_clip(data / "sub" / "b.mp4", frames=2, size=(160, 120))
    out = tmp_path / "out"
    code, printed = _run([str(data), "-o", str(out), "--format", "coco", *ONE_PERSON])
    path = out / "keypoints.coco.json"
    assert code == 0 and f"coco dataset: {path}" in printed
    coco = COCO(str(path))
    names = sorted((img["file_name"], img["frame_index"]) for img in coco.dataset["images"])
    assert names == [("a.mp4", 0), ("a.mp4", 1), ("a.mp4", 2), ("sub/b.mp4", 0), ("sub/b.mp4", 1)]
    assert len(coco.getAnnIds()) == 5  # one person in every frame
    first = path.read_bytes()
    code, _ = _run([str(data), "-o", str(out), "--format", "coco", *ONE_PERSON])  # all skipped
    assert code == 0 and path.read_bytes() == first
    rows = json.loads((out / "batch-summary.json").read_text())["files"]
    assert {r["status"] for r in rows} == {"skipped"}


def test_a_batch_without_coco_writes_no_dataset(tmp_path):
    make_test_clip(tmp_path / "a.mp4", frames=2)
    make_test_clip(tmp_path / "b.mp4", frames=2)
    out = tmp_path / "out"
    code, _ = _run([str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), "-o", str(out), *ONE_PERSON])
    assert code == 0 and not (out / "keypoints.coco.json").exists()
