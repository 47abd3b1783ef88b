"""The COCO dataset over many inputs: pycocotools loads it and COCOeval scores with it."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from stages.outputs.coco_dataset import (COCO_KEYPOINT_NAMES, COCO_SKELETON, CocoDataset, DatasetEntry,
                                 batch_entries, dataset_path, fit_results, write_batch_dataset,
                                 write_for_batch)
from stages.outputs.formats import COCO_PARTS, coco_image_id, coco_score, make_writers
from stages.frames import Frame, Result
from stages.sources.inputs import expand_inputs
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.stages.outputs.test_formats import _person, _results


def _quiet(call, *args):
    """pycocotools prints progress; keep test output readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args)


def _write_input(folder, stem, results, formats=("jsonl", "coco"), number=1) -> tuple:
    folder.mkdir(parents=True, exist_ok=True)
    writers = make_writers(formats, folder, stem, number=number)
    for result in results:
        for writer in writers:
            writer.write(result)
    for writer in writers:
        writer.close()
    return tuple(w.path for w in writers)


def _still(people: int, size=(640, 480)) -> list[Result]:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    frame = Frame(source="photo", index=0, pts=0.0, image=image)
    return [Result(frame=frame, people=tuple(_person(90 + k, track_id=k + 1)
                                             for k in range(people)))]


@pytest.fixture
def dataset(tmp_path):
    """A video (6 frames: 2, 1, 0, 2, 0, 1 people), an image with one person and one
    with nobody, inputs 1, 2 and 3 of a run, read back into OUT/keypoints.coco.json."""
    out = tmp_path / "out"
    entries = [
        DatasetEntry("day1/clip.mp4", 640, 480,
                     _write_input(out / "day1", "clip", _results(True), number=1), number=1),
        DatasetEntry("photos/a.jpg", 640, 480,
                     _write_input(out / "photos", "a", _still(1), number=2), still=True, number=2),
        DatasetEntry("photos/empty.jpg", 320, 240,
                     _write_input(out / "photos", "empty", _still(0, (320, 240)), number=3),
                     still=True, number=3),
    ]
    path = dataset_path(out)
    written = write_batch_dataset(path, entries)
    assert (written.images, written.annotations) == (8, 7)
    return path


def test_pycocotools_loads_the_dataset_as_is(dataset, tmp_path):
    coco = _quiet(COCO, str(dataset))
    data = json.loads(dataset.read_text())
    assert set(data) >= {"info", "images", "annotations", "categories"}
    assert data["categories"] == [{
        "id": 1, "name": "person", "supercategory": "person",
        "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": [list(l) for l in COCO_SKELETON]}]
    assert len(COCO_KEYPOINT_NAMES) == 17 and len(COCO_SKELETON) == 19
    assert all(1 <= j <= 17 for limb in COCO_SKELETON for j in limb)

    images = coco.loadImgs(coco.getImgIds())
    assert len({i["id"] for i in images}) == len(images) == 8
    assert [i["id"] for i in images] == [coco_image_id(1, f) for f in range(6)] + [
        coco_image_id(2, 0), coco_image_id(3, 0)]  # input number and frame
    assert [(i["file_name"], i["frame_index"], i["width"], i["height"]) for i in images] == (
        [("day1/clip.mp4", f, 640, 480) for f in range(6)]
        + [("photos/a.jpg", 0, 640, 480), ("photos/empty.jpg", 0, 320, 240)])

    annotations = coco.loadAnns(coco.getAnnIds())
    assert len({a["id"] for a in annotations}) == len(annotations) == 7
    by_image = {i["id"]: i for i in images}
    log = read_keypoint_log(tmp_path / "out" / "day1" / "clip.jsonl")
    for a in annotations:
        assert a["category_id"] == 1 and a["iscrowd"] == 0
        v = a["keypoints"][2::3]
        assert set(v) <= {0, 2} and a["num_keypoints"] == v.count(2)
        found = [(x, y) for x, y, flag in zip(a["keypoints"][0::3], a["keypoints"][1::3], v) if flag]
        xs, ys = [p[0] for p in found], [p[1] for p in found]
        assert a["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], abs=0.01)
        image = by_image[a["image_id"]]
        if image["file_name"] == "day1/clip.mp4":  # the same numbers as the JSON Lines log
            record = log[image["frame_index"]]
            person = next(p for p in record["people"] if p["id"] == a["track_id"])
            assert a["score"] == coco_score(person["score"]) and 0 <= a["score"] <= 1
            assert a["keypoint_scores"] == [person["keypoints"][i][2] for i in COCO_PARTS]
            assert found == [tuple(person["keypoints"][i][:2]) for i in COCO_PARTS
                             if person["keypoints"][i][2] > 0]


def _evaluate(gt: COCO, results: list[dict]) -> float:
    dt = _quiet(gt.loadRes, results)
    ev = COCOeval(gt, dt, "keypoints")
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    return ev.stats[0]


def test_cocoeval_scores_the_dataset_against_itself(dataset):
    gt = _quiet(COCO, str(dataset))
    results = [{k: a[k] for k in ("image_id", "category_id", "keypoints", "score")}
               for a in gt.loadAnns(gt.getAnnIds())]
    assert _evaluate(gt, results) == pytest.approx(1.0)
    # the check can fail: detections 40 px off score far lower
    moved = [dict(r, keypoints=[v + 40 * (i % 3 < 2) for i, v in enumerate(r["keypoints"])])
             for r in results]
    assert _evaluate(gt, moved) < 0.5


def test_per_input_results_load_against_the_dataset_as_they_are(dataset, tmp_path):
    """The per-input results carry the dataset's image ids: loadRes takes each file."""
    gt = _quiet(COCO, str(dataset))
    names = {i["id"]: (i["file_name"], i["frame_index"]) for i in gt.loadImgs(gt.getImgIds())}
    results = []
    for name, path in (("day1/clip.mp4", "day1/clip.coco.json"), ("photos/a.jpg", "photos/a.coco.json")):
        loaded = _quiet(gt.loadRes, str(tmp_path / "out" / path))
        mine = loaded.loadAnns(loaded.getAnnIds())
        assert {names[a["image_id"]][0] for a in mine} == {name}
        results += json.loads((tmp_path / "out" / path).read_text())
    assert len(results) == 7
    assert _evaluate(gt, results) == pytest.approx(1.0)


def test_keypoints_are_read_from_the_log_else_from_the_coco_results(tmp_path):
    out = tmp_path / "out"
    with_log = _write_input(out / "a", "clip", _results(True))
    coco_only = _write_input(out / "b", "clip", _results(False), formats=("coco",))
    still = _write_input(out / "c", "empty", _still(0), formats=("coco",))
    path = out / "keypoints.coco.json"
    write_batch_dataset(path, [DatasetEntry("a/clip.mp4", 64, 48, with_log),
                               DatasetEntry("b/clip.mp4", 64, 48, coco_only),
                               DatasetEntry("c/empty.png", 64, 48, still, still=True)])
    data = json.loads(path.read_text())
    frames = [(i["file_name"], i["frame_index"]) for i in data["images"]]
    # the log has every frame (and pts); the results only frames with people;
    # an image always has its one entry
    assert frames == ([("a/clip.mp4", f) for f in range(6)]
                      + [("b/clip.mp4", f) for f in (0, 1, 3, 5)] + [("c/empty.png", 0)])
    assert [i.get("pts") for i in data["images"][:6]] == [f / 25 for f in range(6)]
    from_log = [a for a in data["annotations"] if a["image_id"] // 10**9 == 1]
    from_coco = [a for a in data["annotations"] if a["image_id"] // 10**9 == 2]
    assert len(from_log) == len(from_coco) == 6
    for a, b in zip(from_log, from_coco):  # same people either way
        assert a["keypoints"] == b["keypoints"] and a["score"] == b["score"]
        assert a["keypoint_scores"] == b["keypoint_scores"]
    assert all("track_id" in a for a in from_log) and not any("track_id" in a for a in from_coco)


def test_an_input_that_cannot_be_read_back_is_left_out_whole(tmp_path, caplog):
    out = tmp_path / "out"
    good = _write_input(out, "good", _results(True))
    bad = _write_input(out, "bad", _results(True), formats=("coco",))
    lines = bad[0].read_text().splitlines()
    lines[4] = "{not json"
    bad[0].write_text("\n".join(lines) + "\n")
    alien = out / "alien.jsonl"
    alien.write_text('{"frame": 0, "people": []}\n{"frame": 1, "people": [{"score": 1}]}\n')
    path = out / "keypoints.coco.json"
    dataset = write_batch_dataset(path, [DatasetEntry("bad.mp4", 64, 48, bad),
                                         DatasetEntry("alien.mp4", 64, 48, (alien,)),
                                         DatasetEntry("gone.mp4", 64, 48, (out / "gone.jsonl",)),
                                         DatasetEntry("none.mp4", 64, 48, ()),
                                         DatasetEntry("good.mp4", 64, 48, good)])
    assert (dataset.images, dataset.annotations) == (6, 6)
    coco = _quiet(COCO, str(path))
    assert {i["file_name"] for i in coco.dataset["images"]} == {"good.mp4"}
    # good.mp4 is input 5: its ids; annotation ids stay gapless
    assert sorted(coco.getImgIds()) == [coco_image_id(5, f) for f in range(6)]
    assert sorted(coco.getAnnIds()) == list(range(1, 7))
    assert {a["image_id"] for a in coco.dataset["annotations"]} <= set(coco.getImgIds())
    for name in ("bad.mp4", "alien.mp4", "gone.mp4", "none.mp4"):
        assert f"{name}: left out of the COCO dataset" in caplog.text


def test_the_dataset_appears_whole_on_close_and_a_failed_build_keeps_the_previous(tmp_path):
    path = tmp_path / "keypoints.coco.json"
    record = {"frame": 0, "pts": 0.0, "people": [{"score": 0.5, "keypoints": [[1, 2, 0.5]] * 18}]}
    with CocoDataset(path) as dataset:
        dataset.add("x.jpg", 8, 8, [record], number=1)
        assert not path.exists() and os.listdir(tmp_path) == []  # spools are anonymous
        with pytest.raises(ValueError, match="number 1 is taken"):
            dataset.add("again.jpg", 8, 8, [record], number=1)
    first = path.read_text()
    assert _quiet(COCO, str(path)).getImgIds() == [10**9]
    with pytest.raises(RuntimeError):
        with CocoDataset(path) as dataset:
            dataset.add("y.jpg", 8, 8, [record, dict(record, frame=1)], number=1)
            raise RuntimeError("the batch failed")
    assert path.read_text() == first and os.listdir(tmp_path) == [path.name]
    with CocoDataset(path):  # nothing added: a valid, empty dataset
        pass
    empty = _quiet(COCO, str(path))
    assert empty.getImgIds() == [] and empty.getAnnIds() == []
    assert empty.loadCats(1)[0]["keypoints"] == list(COCO_KEYPOINT_NAMES)


def test_dataset_path_never_takes_an_inputs_own_output(tmp_path):
    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    for name in ("sub/keypoints.mp4", "clip.mp4"):
        make_test_clip(data / name, frames=1)
    out = tmp_path / "out"
    assert dataset_path(out, expand_inputs([str(data)])) == out / "keypoints.coco.json"
    make_test_clip(data / "keypoints.mp4", frames=1)  # its own keypoints.coco.json
    assert dataset_path(out, expand_inputs([str(data)])) == out / "keypoints.dataset.coco.json"
    make_test_clip(data / "keypoints.dataset.mov", frames=1)
    assert dataset_path(out, expand_inputs([str(data)])) == out / "keypoints.dataset-1.coco.json"


class _Report:
    def __init__(self, status, outputs=()):
        self.status, self.outputs = status, list(outputs)


def test_batch_entries_take_completed_inputs_with_their_displayed_size(tmp_path):
    data = tmp_path / "data"
    (data / "v").mkdir(parents=True)
    make_test_clip(data / "v" / "clip.mp4", frames=3, size=(96, 64))
    cv2.imwrite(str(data / "photo.png"), np.zeros((30, 40, 3), np.uint8))
    make_test_clip(data / "v" / "failed.mp4", frames=3)
    items = expand_inputs([str(data)])
    reports = {"photo.png": _Report("skipped", ["out/photo.jsonl"]),
               "v/clip.mp4": _Report("done", ["out/v/clip.mp4", "out/v/clip.coco.json"]),
               "v/failed.mp4": _Report("failed")}
    entries = batch_entries(items, reports)
    assert entries == [  # numbered by their place in the batch
        DatasetEntry("photo.png", 40, 30, (Path("out/photo.jsonl"),), still=True, number=1),
        DatasetEntry("v/clip.mp4", 96, 64, (Path("out/v/clip.mp4"), Path("out/v/clip.coco.json")),
                     number=2)]


def test_a_batch_and_its_resumed_run_give_the_same_dataset(tmp_path):
    """Through BatchJob's real outputs: the skipped inputs of a resumed run count too."""
    from stages.jobs.batch import BatchJob
    from stages.settings import JobConfig

    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    make_test_clip(data / "walk.mp4", frames=4, size=(96, 64))
    cv2.imwrite(str(data / "sub" / "photo.png"), np.full((64, 96, 3), 90, np.uint8))
    config = JobConfig(backend="tests.support.fakes:OnePersonBackend", formats=("coco",))
    out = tmp_path / "out"
    items = expand_inputs([str(data)])
    reports = BatchJob(items, out, config).run()
    path = dataset_path(out)
    first = write_batch_dataset(path, batch_entries(items, reports))
    assert (first.images, first.annotations) == (5, 5)  # one person on every frame
    coco = _quiet(COCO, str(path))
    assert [(i["file_name"], i["frame_index"], i["width"], i["height"])
            for i in coco.dataset["images"]] == (
        [("sub/photo.png", 0, 96, 64)] + [("walk.mp4", f, 96, 64) for f in range(4)])
    gt_results = [{k: a[k] for k in ("image_id", "category_id", "keypoints", "score")}
                  for a in coco.dataset["annotations"]]
    assert _evaluate(coco, gt_results) == pytest.approx(1.0)
    before = json.loads(path.read_text())

    again = BatchJob(items, out, config)
    assert again.todo == 0
    resumed = again.run()
    assert {r.status for r in resumed.values()} == {"skipped"}
    assert write_for_batch(out, items, {k: r.as_dict() for k, r in resumed.items()}).path == path
    after = json.loads(path.read_text())
    before.pop("info"), after.pop("info")
    assert after == before


def test_fit_results_renumbers_a_file_of_another_place_or_an_older_writer(tmp_path):
    path = _write_input(tmp_path, "clip", _results(True), formats=("coco",), number=2)[0]
    text = path.read_text()
    assert not fit_results(path, 2) and path.read_text() == text  # fits: untouched
    assert fit_results(path, 3)
    moved = json.loads(path.read_text())
    assert [r["image_id"] for r in moved] == [
        coco_image_id(3, r["image_id"] % 10**9) for r in json.loads(text)]
    assert [r["score"] for r in moved] == [r["score"] for r in json.loads(text)]
    assert not [p for p in os.listdir(tmp_path) if p != path.name]  # no temporary file left
    # a file written before the ids were numbered: image_id was the frame, score tf-pose's
    old = tmp_path / "old.coco.json"
    old.write_text('[\n{"image_id":4,"category_id":1,"keypoints":[1,2,0.5],"score":1.2432},\n'
                   '{"image_id":7,"category_id":1,"keypoints":[1,2,0.5],"score":0.6}\n]\n')
    assert fit_results(old, 1)
    assert [(r["image_id"], r["score"]) for r in json.loads(old.read_text())] == [
        (coco_image_id(1, 4), 0.6216), (coco_image_id(1, 7), 0.3)]
    assert old.read_text().endswith("\n]\n")  # still what the writer writes: a line each
    empty = tmp_path / "empty.coco.json"
    empty.write_text("[\n]\n")
    assert not fit_results(empty, 5)


def test_a_resumed_batch_with_an_input_more_renumbers_the_skipped_inputs_results(tmp_path):
    """An input added before another in the sorted order moves it up one place: the skipped
    input's results are renumbered, so every results file still loads against the dataset."""
    from stages.jobs.batch import BatchJob
    from stages.settings import JobConfig

    data = tmp_path / "in"
    data.mkdir()
    for name in ("a.mp4", "c.mp4"):
        make_test_clip(data / name, frames=3, size=(96, 64))
    config = JobConfig(backend="tests.support.fakes:OnePersonBackend", formats=("coco",))
    out = tmp_path / "out"
    BatchJob(expand_inputs([str(data)]), out, config).run()
    assert {r["image_id"] // 10**9 for r in json.loads((out / "c.coco.json").read_text())} == {2}
    make_test_clip(data / "b.mp4", frames=2, size=(96, 64))
    items = expand_inputs([str(data)])
    reports = BatchJob(items, out, config).run()
    assert {k: r.status for k, r in reports.items()} == {
        "a.mp4": "skipped", "b.mp4": "done", "c.mp4": "skipped"}
    dataset = write_for_batch(out, items, reports)
    gt = _quiet(COCO, str(dataset.path))
    for number, stem in enumerate("abc", 1):
        loaded = _quiet(gt.loadRes, str(out / f"{stem}.coco.json"))
        ids = {a["image_id"] for a in loaded.loadAnns(loaded.getAnnIds())}
        assert {gt.loadImgs(i)[0]["file_name"] for i in ids} == {f"{stem}.mp4"}
        assert {i // 10**9 for i in ids} == {number}
    again = BatchJob(items, out, config)  # the rewritten file still vouches for its input
    assert again.todo == 0
