"""Whole files on a Dask cluster (scheduler + 2 worker processes on 127.0.0.1): slow."""

import json

import pytest

from stages.jobs.batch import BatchJob
from stages.jobs.cluster import run_on_cluster
from stages.sources.inputs import expand_inputs
from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_sample_clip

distributed = pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address


def test_cluster_results_equal_a_local_run(tmp_path, cluster):
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    make_sample_clip(data / "one.mp4", seconds=0.2, size=(320, 180))
    make_sample_clip(data / "x" / "two.mp4", seconds=0.16, size=(256, 144))
    (data / "x" / "bad.mp4").write_text("not a video")
    items = expand_inputs([str(data)])
    config = JobConfig(backend="tf", formats=("jsonl", "coco"))

    remote = run_on_cluster(cluster, items, tmp_path / "cluster", config)
    local = BatchJob(items, tmp_path / "local", config).run()

    assert {k: r["status"] for k, r in remote.items()} == {k: r.status for k, r in local.items()} == {
        "one.mp4": "done", "x/two.mp4": "done", "x/bad.mp4": "failed"}
    for rel in ("one", "x/two"):
        ours = read_keypoint_log(tmp_path / "cluster" / f"{rel}.jsonl")
        theirs = read_keypoint_log(tmp_path / "local" / f"{rel}.jsonl")
        assert ours == theirs and any(r["people"] for r in ours)
        assert (tmp_path / "cluster" / f"{rel}.manifest.json").is_file()
        coco = (tmp_path / "cluster" / f"{rel}.coco.json").read_text()
        assert coco == (tmp_path / "local" / f"{rel}.coco.json").read_text()  # the same image ids
    assert {r["image_id"] // 10**9 for r in json.loads(
        (tmp_path / "cluster" / "x" / "two.coco.json").read_text())} == {3}  # its place in the batch
    for key in ("one.mp4", "x/two.mp4"):  # each file says what processed it, on which host
        engine = remote[key]["engine"]
        assert engine == {**local[key].engine, "host": engine["host"]} and engine["host"]
        assert (engine["backend"], engine["precision"]) == ("tf", "f32")
    again = run_on_cluster(cluster, items, tmp_path / "cluster", config)
    assert {k: r["status"] for k, r in again.items()} == {
        "one.mp4": "skipped", "x/two.mp4": "skipped", "x/bad.mp4": "failed"}
