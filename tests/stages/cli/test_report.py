"""``posestream-report OUT``: the report of an output folder, made again."""

from __future__ import annotations

import json

import pytest

from stages.cli.report import main
from stages.outputs.report import REPORT_NAME
from tests.stages.outputs.test_report import ENGINE, Page, _batch_summary, _tables
from tests.stages.outputs.test_tables import _input, _results, _tracked_twice


@pytest.fixture
def out(tmp_path):
    """An output folder with the tables of two inputs, a and b."""
    return _tables(tmp_path, [_input(tmp_path, "a", _tracked_twice()),
                              _input(tmp_path, "b", _results(True))]).frames.parent


def test_the_report_of_a_batch_takes_the_speed_from_its_summary(out, capsys):
    (out / "batch-summary.json").write_text(json.dumps(_batch_summary(a="done", b="done")))
    assert main([str(out)]) == 0
    assert capsys.readouterr().out == f"report: {out / REPORT_NAME}\n"
    page = Page((out / REPORT_NAME).read_text())
    assert page.h2() == ["Totals", "a", "b"] and len(page.pngs()) == 6
    assert page.text.count("processed at 20.0 FPS") == 2


def test_a_file_runs_summary_is_given_with_summary(out, tmp_path, capsys):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"input": "a", "state": "done", "frames_written": 9,
                                "seconds": 0.3, "fps": 30.0, "engine": ENGINE}))
    (out / "batch-summary.json").write_text(json.dumps(_batch_summary(a="done", b="done")))
    assert main([str(out), "--summary", str(mine)]) == 0
    page = Page((out / REPORT_NAME).read_text())
    assert "processed at 30.0 FPS" not in page.text  # it lists a alone: not these tables' run
    assert "The summary does not list 1 of the tables' inputs" in page.text
    assert main([str(out)]) == 0  # the batch's own
    assert "processed at 20.0 FPS" in (out / REPORT_NAME).read_text()


def test_without_a_summary_the_report_says_the_speed_is_not_recorded(out):
    assert main([str(out)]) == 0
    assert "Processing speed: not recorded" in (out / REPORT_NAME).read_text()


@pytest.mark.parametrize("case", ["no tables", "summary not JSON", "summary missing"])
def test_an_error_is_one_line_and_status_1(out, tmp_path, capsys, case):
    argv = [str(out)]
    if case == "no tables":
        argv = [str(tmp_path / "empty")]
        expected = "no tables (keypoints.csv, frames.csv, people.csv) to report on"
    elif case == "summary not JSON":
        (out / "batch-summary.json").write_text("{cut")
        expected = "batch-summary.json: not a summary (not JSON"
    else:
        argv += ["--summary", str(tmp_path / "gone.json")]
        expected = "gone.json: cannot read (No such file or directory)"
    assert main(argv) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and len(printed.err.splitlines()) == 1, printed.err
    assert printed.err.startswith("posestream-report: error: ") and expected in printed.err
    assert not (out / REPORT_NAME).exists()


def test_a_usage_error_is_status_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == 2 and "OUT" in capsys.readouterr().err
