"""Text files the user gives (``--list``, ``--sources``, ``--config``) may start with a
UTF-8 BOM, as editors on Windows write them (issue 21, item 18): it is not part of
the first entry, key or spec."""

from __future__ import annotations

import json

import pytest

import run_stream
from stages.cli.config_file import config_defaults
from stages.cli.parser import build_parser
from stages.outputs.sample import make_test_clip

BOM = "\ufeff"
FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_batch_from_a_list_file_with_a_bom_runs_every_entry(tmp_path, capsys, newline):
    clips = [make_test_clip(tmp_path / f"c{i}.mp4", frames=2, size=(64, 48)) for i in range(2)]
    listing = tmp_path / "list.txt"
    listing.write_bytes((BOM + newline.join(map(str, clips)) + newline).encode("utf-8"))
    code = run_stream.main(["--list", str(listing), "-o", str(tmp_path / "out"), *FAKE])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = json.loads((tmp_path / "out" / "batch-summary.json").read_text())["files"]
    assert {r["input"]: r["status"] for r in rows} == {"c0.mp4": "done", "c1.mp4": "done"}


@pytest.mark.parametrize("first", ["rtsp://127.0.0.1:8554/cam1 front", "# cameras", "0"])
def test_a_sources_file_with_a_bom_gives_its_first_spec(tmp_path, first):
    path = tmp_path / "sources.txt"
    path.write_bytes((BOM + first + "\r\nrtsp://127.0.0.1:8554/cam2\n").encode("utf-8"))
    specs = run_stream._read_sources(path)
    assert specs[-1] == ("rtsp://127.0.0.1:8554/cam2", None)
    expected = {"rtsp://127.0.0.1:8554/cam1 front": ("rtsp://127.0.0.1:8554/cam1", "front"),
                "0": ("0", None)}.get(first)
    assert specs[:-1] == ([expected] if expected else [])


@pytest.mark.parametrize("head", ["workers = 2", "# settings\r\nworkers = 2", '"workers" = 2'])
def test_a_config_file_with_a_bom_gives_its_first_key(tmp_path, head):
    path = tmp_path / "run.toml"
    path.write_bytes((BOM + head + '\nresolution = "64x48"\n').encode("utf-8"))
    assert config_defaults(build_parser(), path) == {"workers": 2, "resolution": "64x48"}


def test_a_config_file_with_a_bom_runs(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    config = tmp_path / "run.toml"
    config.write_bytes((BOM + 'workers = 2\nresolution = "64x48"\n').encode("utf-8"))
    code = run_stream.main(["--config", str(config), str(clip), "-o", str(tmp_path / "out"),
                            "--backend", "tests.support.fakes:ZeroBackend"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "(2 workers)" in out and "at 64x48" in out
