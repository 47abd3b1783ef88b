"""``posestream --version``, the version in the summaries, and CHANGELOG.md agreeing with it."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import run_stream
from stages.outputs.sample import make_test_clip
from stages.version import version

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = ROOT / "CHANGELOG.md"
FAKE = "tests.support.fakes:ZeroBackend"
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?$", re.M)
SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _releases() -> list[tuple[str, str | None, str]]:
    """(name, date, body) of each ``## [...]`` section of the changelog, in order."""
    text = CHANGELOG.read_text(encoding="utf-8")
    heads = list(HEADING.finditer(text))
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return [(h["name"], h["date"], text[h.end():end]) for h, end in zip(heads, ends)]


def _key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


@pytest.mark.parametrize("command", [
    [str(Path(sys.executable).parent / "posestream"), "--version"],  # the console script
    [sys.executable, str(ROOT / "run_stream.py"), "--version"],
], ids=["console-script", "run_stream.py"])
def test_version_prints_the_program_and_its_version_and_exits_0(command, tmp_path):
    if not Path(command[0]).exists():
        pytest.skip(f"{command[0]} is not installed in this environment")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"posestream {version()}\n" and done.stderr == ""
    assert re.fullmatch(r"posestream \d+\.\d+\.\d+\n", done.stdout)


def test_version_comes_before_any_other_check(capsys):
    # nothing else is read: not even an input that does not exist
    with pytest.raises(SystemExit) as exit_:
        run_stream.main(["no/such/input.mp4", "--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"posestream {version()}\n"


def test_the_newest_release_in_the_changelog_is_the_programs_version():
    releases = _releases()
    assert releases[0][0] == "Unreleased", "the changelog starts with an Unreleased section"
    released = [(name, date) for name, date, _ in releases[1:]]
    assert released and released[0][0] == version()


def test_the_changelog_lists_versions_newest_first_each_dated_with_the_usual_sections():
    releases = _releases()[1:]
    names = [name for name, _, _ in releases]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", name) for name in names), names
    assert names == sorted(names, key=_key, reverse=True) and len(set(names)) == len(names)
    dates = [datetime.date.fromisoformat(date) for _, date, _ in releases]
    assert dates == sorted(dates, reverse=True)
    for name, _, body in _releases():
        sections = re.findall(r"^### (.+)$", body, re.M)
        assert sections and set(sections) <= SECTIONS, (name, sections)
        assert re.search(r"^- \S", body, re.M), f"{name} has no entry"


def test_summary_json_says_which_version_made_the_results(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3)
    summary = tmp_path / "summary.json"
    code = run_stream.main([str(clip), "-o", str(tmp_path / "out"), "--backend", FAKE,
                            "--summary-json", str(summary)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(summary.read_text())["engine"]["posestream_version"] == version()
