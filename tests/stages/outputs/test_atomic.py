"""Partial and aside names fit wherever the final name fits (issue 21, item 17).

A file name has at most 255 bytes; a partial name adds up to ~67 (pid, token,
host), an aside name 8. Stems of 230 and 250 bytes, ASCII and not, make them
overflow; each test makes the names on disk, so the file system says whether
they fit.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_stream
from stages.outputs.atomic import Staged, aside_path, clean_dead_partials, commit_set, partial_path
from stages.outputs.sample import make_test_clip
from tests.support.tables import RUN_TABLES

ROOT = Path(__file__).resolve().parents[3]
FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]
NAME_MAX = 255  # bytes of a file name on the file systems tests run on
STEMS = {"230": "s" * 230, "250": "s" * 250, "230-utf8": "é" * 115, "250-utf8": "ü" * 125}
SUFFIXES = (".mp4", ".coco.json", ".csv")


def _fits(name: str) -> bool:
    return len(os.fsencode(name)) <= NAME_MAX


def _finals(stem: str) -> list[str]:
    """The stem's output names that fit at all (as a user could have them)."""
    return [stem + s for s in SUFFIXES if _fits(stem + s)]


@pytest.mark.parametrize("stem", STEMS.values(), ids=STEMS.keys())
def test_partial_backup_and_aside_names_of_a_long_name_can_be_made(tmp_path, stem):
    for name in _finals(stem):
        final = tmp_path / name
        for kind in ("partial", "old"):
            partial = partial_path(final, kind)
            partial.write_text("x")  # the file system is the judge
            assert partial.name.startswith(".") and f".{kind}-{os.getpid()}-" in partial.name
            assert partial.name.split(f".{kind}-")[0].endswith(Path(name).suffix)
            partial.unlink()
        aside = aside_path(final)
        aside.write_text("x")
        assert ".partial." in aside.name and aside.name.endswith(Path(name).suffix)
        assert aside_path(final) == aside  # one name, every time


@pytest.mark.parametrize("stem", STEMS.values(), ids=STEMS.keys())
def test_a_long_named_set_commits_over_the_previous_one(tmp_path, stem, caplog):
    finals = [tmp_path / name for name in _finals(stem)]
    for generation in ("first", "second"):  # the second moves the first to backups
        staged = []
        for final in finals:
            tmp = partial_path(final)
            tmp.write_text(generation)
            staged.append(Staged(tmp, final))
        commit_set(staged)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {p.name: "second" for p in finals}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("stem", ["k" * 230, "k" * 249], ids=["230", "249"])
def test_a_killed_writers_long_named_partial_is_set_aside_by_the_next(tmp_path, stem):
    final = tmp_path / f"{stem}.jsonl"
    assert _fits(final.name)
    script = ("import sys; from pathlib import Path; from stages.outputs.atomic import partial_path; "
              "partial_path(Path(sys.argv[1])).write_text('{}\\n')")
    subprocess.run([sys.executable, "-c", script, str(final)], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))  # a writer that is gone now
    assert len(os.listdir(tmp_path)) == 1
    kept = clean_dead_partials(tmp_path)
    assert kept == [aside_path(final)] and os.listdir(tmp_path) == [aside_path(final).name]
    assert aside_path(final).read_text() == "{}\n"


@pytest.mark.parametrize("stem, formats", [("x" * 230, ["jsonl", "coco"]), ("y" * 250, ["csv"])],
                         ids=["230", "250"])
def test_a_long_named_input_runs_twice_without_a_warning(tmp_path, capsys, stem, formats):
    clip = make_test_clip(tmp_path / f"{stem}.mp4", frames=3, size=(64, 48))
    out = tmp_path / "out"
    for _ in range(2):  # the second run replaces the first one's set
        code = run_stream.main([str(clip), "-o", str(out), *FAKE, "--format", *formats])
        err = capsys.readouterr().err
        assert code == 0 and err == "", err
    suffixes = {"jsonl": ".jsonl", "coco": ".coco.json", "csv": ".csv"}
    assert sorted(os.listdir(out)) == sorted([f"{stem}.mp4", *(stem + suffixes[f] for f in formats),
                                              *(RUN_TABLES if "jsonl" in formats else ()),
                                              *(["keypoints.coco.json"] if "coco" in formats else [])])


def test_an_output_name_no_file_system_takes_is_refused_before_the_run(tmp_path, capsys):
    clip = make_test_clip(tmp_path / f"{'z' * 250}.mp4", frames=3, size=(64, 48))
    code = run_stream.main([str(clip), "-o", str(tmp_path / "out"), *FAKE, "--format", "jsonl"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"{'z' * 250}.jsonl: the output name is 256 bytes" in err and "(255)" in err
    assert not (tmp_path / "out").exists()
