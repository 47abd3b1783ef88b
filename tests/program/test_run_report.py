"""Issue 23, item 6: file and batch runs end with OUT/report.html, and ``posestream-report
OUT`` makes the same page again from the output folder."""

from __future__ import annotations

import configparser
import importlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from stages.outputs.sample import make_sample_clip, make_test_clip
from tests.stages.outputs.test_report import Page
from tests.stages.outputs.test_report_page import check_page, open_report

from tests.program.test_run_tables import ONE_PERSON, ROOT, _run


def _remake(out: Path, *extra) -> subprocess.CompletedProcess:
    """``python -m stages.cli.report OUT ...``, as the console script runs it."""
    return subprocess.run([sys.executable, "-m", "stages.cli.report", str(out), *map(str, extra)],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)


def test_a_batch_writes_its_report_and_the_command_makes_the_same_one_again(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    make_test_clip(data / "a.mp4", frames=4, size=(96, 64))
    make_test_clip(data / "sub" / "b.mp4", frames=3, size=(80, 48))
    make_test_clip(data / "c.mp4", frames=5, size=(96, 64))
    out = tmp_path / "out"
    code, printed = _run([data, "-o", out, *ONE_PERSON])
    assert code == 0 and f"report: {out / 'report.html'}" in printed.splitlines()
    first = (out / "report.html").read_bytes()
    page = Page(first.decode())
    assert page.h2()[0] == "Totals" and sorted(page.h2()[1:]) == ["a.mp4", "c.mp4", "sub/b.mp4"]
    assert len(page.pngs()) == 9
    assert "3 (3 done)" in page.text and page.text.count("Done: processed at") == 3
    (out / "report.html").unlink()
    done = _remake(out)
    assert done.returncode == 0 and done.stdout == f"report: {out / 'report.html'}\n", done.stderr
    assert (out / "report.html").read_bytes() == first  # from the folder alone, the same page


def test_a_file_run_writes_its_report_and_its_summary_makes_it_again(tmp_path):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=5, size=(96, 64))
    out, summary = tmp_path / "out", tmp_path / "walk.json"
    code, printed = _run([clip, "-o", out, *ONE_PERSON, "--summary-json", summary])
    assert code == 0 and f"report: {out / 'report.html'}" in printed.splitlines()
    first = (out / "report.html").read_bytes()
    page = Page(first.decode())
    assert page.h2() == [str(clip)] and len(page.pngs()) == 3  # one file: no totals
    assert "Done: processed at" in page.text
    done = _remake(out)  # without its summary the speed is not known
    assert done.returncode == 0, done.stderr
    assert "Processing speed: not recorded" in (out / "report.html").read_text()
    assert _remake(out, "--summary", summary).returncode == 0
    assert (out / "report.html").read_bytes() == first


def test_a_stopped_batch_has_no_report_and_says_how_to_make_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "a.mp4", frames=3, size=(64, 48))
    make_test_clip(data / "b.mp4", frames=40, size=(64, 48))
    out = tmp_path / "out"
    code, _ = _run([data, "-o", out, "--backend", "tests.support.fakes:ZeroBackend",
                    "--resolution", "64x48"])
    assert code == 0 and (out / "report.html").is_file()
    # SIGINT on b's 17th frame (as in test_run_tables): a is done, b is not
    env = dict(os.environ, PYTHONPATH=str(ROOT), POSESTREAM_FAKE_SIGNAL_AT="20")
    done = subprocess.run(
        [sys.executable, str(ROOT / "run_stream.py"), str(data), "-o", str(out), "--force",
         "--backend", "tests.support.fakes:SignalAtBackend", "--resolution", "64x48",
         "--workers", "1", "--queue-size", "1", "--files-in-flight", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert f"report: not written: the run was stopped; posestream-report {out} makes it" \
        in done.stdout, done.stdout
    assert not (out / "report.html").exists()  # it told of the tables this run replaced
    assert _remake(out).returncode == 0
    assert Page((out / "report.html").read_text()).h2() == ["Totals", "a.mp4"]


def test_a_run_without_tables_has_no_report(tmp_path):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=3, size=(96, 64))
    code, printed = _run([clip, "-o", tmp_path / "out", *ONE_PERSON, "--format", "csv"])
    assert code == 0 and "report:" not in printed
    assert not (tmp_path / "out" / "report.html").exists()


def test_the_command_is_installed_as_posestream_report():
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in
                   config["options.entry_points"]["console_scripts"].strip().splitlines()
                   if " = " in line)
    module, _, name = scripts["posestream-report"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    requires = config["options"]["install_requires"]
    assert any(line.strip().startswith("matplotlib") for line in requires.splitlines())


@pytest.mark.slow
def test_a_batch_of_three_clips_with_people_through_the_real_model_in_chromium(chromium, tmp_path):
    """The acceptance run: three short clips of real photos of people, the default model,
    and the report in a real browser (its screenshot is ``tmp_path/report.png``)."""
    data = tmp_path / "data"
    (data / "day2").mkdir(parents=True)
    for name, seconds in (("a.mp4", 1.0), ("b.mp4", 1.5), ("day2/c.mp4", 2.0)):
        make_sample_clip(data / name, seconds=seconds, fps=Fraction(10), size=(320, 180))
    out = tmp_path / "out"
    code, printed = _run([data, "-o", out, "--resolution", "216x184"])
    assert code == 0, printed
    path = out / "report.html"
    page = Page(path.read_text())
    assert page.h2() == ["Totals", "a.mp4", "b.mp4", "day2/c.mp4"]
    assert "No track" not in page.text and "Nobody was found" not in page.text
    images, requests, shot = open_report(chromium, path, tmp_path / "report.png")
    check_page(path, images, requests, shot, pictures=9)
