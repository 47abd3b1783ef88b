"""docs/hooks: the generated reference covers every option, TOML key and output field.

The option checks read the real ``posestream --help`` and the real TOML
reader; the field checks read what real runs wrote (with a fake network that
finds one person, so every person field is there).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_stream
from docs.hooks import reference
from stages.cli.config_file import config_defaults
from stages.cli.parser import build_parser
from stages.outputs.sample import make_test_clip

ROOT = Path(__file__).resolve().parents[2]
ONE_PERSON = ["--backend", "tests.support.fakes:OnePersonBackend", "--resolution", "432x368"]


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return reference.pages()


def _section(page: str, heading_start: str) -> str:
    """The section whose heading starts with ``heading_start``, up to the next heading of
    its level or above (its subsections included)."""
    start = page.index(heading_start)
    body = page.index("\n", start)  # the section's text begins after its heading's line
    level = len(heading_start) - len(heading_start.lstrip("#"))
    following = re.search(rf"^#{{1,{level}}} ", page[body:], re.MULTILINE)
    return page[start:body + following.start()] if following else page[start:]


def _option_section(page: str, option: str) -> str:
    match = re.search(rf"^### `[^`]*(?<![\w-]){re.escape(option)}(?![\w-])", page, re.MULTILINE)
    assert match, f"{option} has no section in the options reference"
    return _section(page, match.group(0))


# -- options and TOML keys -----------------------------------------------------------------------

def test_every_option_of_posestream_help_has_a_section_with_its_default(pages):
    help_text = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "--help"],
                               capture_output=True, text=True, check=True, cwd=ROOT).stdout
    invocations = re.findall(r"^  (-[^\n]*?)(?:  |$)", help_text, re.MULTILINE)  # the left column
    flags = {f for text in invocations for f in re.findall(r"--[a-z][a-z0-9-]*", text)} - {"--help"}
    assert {"--resolution", "--no-track", "--max-disk", "--files-in-flight"} <= flags
    page = pages["reference/options.md"]
    for flag in sorted(flags):
        _option_section(page, flag)
    for action in build_parser()._actions:
        default = re.search(r"\(default: ([^()]*)\)$", action.help or "")
        if default and action.option_strings:  # what --help says is the default
            section = _option_section(page, action.option_strings[-1])
            shown = default.group(1)
            assert f"| default | `{shown}` |" in section or f"| default | {shown} |" in section, \
                action.option_strings


def test_options_without_a_help_default_say_what_happens_without_them(pages):
    page = pages["reference/options.md"]
    assert "| default | never |" in _option_section(page, "--max-retries")
    assert "| default | none (unset) |" in _option_section(page, "--summary-json")
    assert "| default | off (the option turns it off: track is on) |" in \
        _option_section(page, "--no-track")
    assert "| values | 1 to 64 |" in _option_section(page, "--queue-size")
    assert "| modes | file, batch |" in _option_section(page, "--frame-step")


def _toml_block(page: str) -> str:
    return page.split("```toml\n")[-1].split("```")[0]


def test_every_key_the_toml_file_accepts_is_documented_with_its_default(pages, tmp_path):
    page = pages["reference/options.md"]
    parser = build_parser()
    accepted = {"input"} | {o[2:] for a in parser._actions for o in a.option_strings
                            if o.startswith("--") and a.dest not in ("config", "help", "version")}
    for key in accepted:
        assert f"| TOML key | `{key}` |" in page, key
    example = _toml_block(page)
    documented = set(re.findall(r"^#? ?([a-z][a-z0-9-]*) = ", example, re.MULTILINE))
    assert documented == accepted
    # the file of every documented default is one the program reads, and it changes nothing
    path = tmp_path / "defaults.toml"
    path.write_text(example, encoding="utf-8")
    values = config_defaults(parser, path)
    assert len(values) == len([line for line in example.splitlines() if not line.startswith("#")])
    for dest, value in values.items():
        assert value == parser.get_default(dest), dest


def test_the_options_page_holds_the_option_by_mode_table(pages):
    from stages import options

    page = pages["reference/options.md"]
    start = "<!-- options-by-mode: made by stages.options.markdown_table() -->\n"
    table = page[page.index(start) + len(start):page.index("\n<!-- end options-by-mode -->")]
    assert table == options.markdown_table()
    assert "--mirror flips what is processed" in page  # the conflicts, with their messages


# -- output files and fields ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def file_run(tmp_path_factory) -> Path:
    """A file run with every format and a summary, then a batch of two with every format."""
    base = tmp_path_factory.mktemp("runs")
    make_test_clip(base / "clip.mp4", frames=3)
    formats = ["--format", "jsonl", "csv", "coco", "openpose"]
    assert run_stream.main([str(base / "clip.mp4"), "-o", str(base / "file"), *ONE_PERSON,
                            *formats, "--summary-json", str(base / "file.json")]) == 0
    (base / "batch").mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_test_clip(base / "batch" / name, frames=2)
    assert run_stream.main([str(base / "batch"), "-o", str(base / "batch-out"), *ONE_PERSON,
                            *formats]) == 0
    return base


def _keys(records, nested: str | None = None) -> set[str]:
    return {key for record in records for key in (record[nested][0] if nested else record)}


def test_every_jsonl_field_written_is_documented(file_run, pages):
    page = _section(pages["reference/outputs.md"], "## JSON Lines")
    records = [json.loads(line) for line in (file_run / "file" / "clip.jsonl").open()]
    assert records and all(r["people"] for r in records)
    for key in _keys(records):
        assert f"| `{key}` |" in page, key
    for key in _keys(records, "people"):
        assert f"| `people[].{key}` |" in page, key


def test_every_csv_column_written_is_documented(file_run, pages):
    page = pages["reference/outputs.md"]
    csvs = {"clip.csv": "## CSV", "keypoints.csv": "## CSV", "frames.csv": "### `OUT/frames.csv`",
            "people.csv": "### `OUT/people.csv`"}
    for name, heading in csvs.items():
        with (file_run / "file" / name).open(newline="") as f:
            header = next(csv.reader(f))
        section = _section(page, heading)
        for column in header:
            assert f"`{column}`" in section, (name, column)


def test_every_coco_and_openpose_key_written_is_documented(file_run, pages):
    page = pages["reference/outputs.md"]
    coco = _section(page, "## COCO")
    results = json.loads((file_run / "file" / "clip.coco.json").read_text())
    assert results
    for key in _keys(results):
        assert f"| `{key}` |" in _section(coco, "### Results"), key
    dataset = json.loads((file_run / "batch-out" / "keypoints.coco.json").read_text())
    dataset_page = _section(coco, "### Dataset")
    for key in dataset:
        assert f"| `{key}` |" in dataset_page, key
    for part in ("images", "annotations", "categories"):
        table = dataset_page.split(f"`{part}[]`:")[1].split("\n\n`")[0]
        for key in _keys(dataset[part]):
            assert f"| `{key}` |" in table, (part, key)
    openpose = _section(page, "## OpenPose JSON")
    document = json.loads(next((file_run / "file" / "clip.openpose").iterdir()).read_text())
    for key in {*document, *_keys(document["people"])}:
        assert f"| `{key}` |" in openpose, key


def _summary_section(page: str, anchor: str) -> str:
    match = re.search(rf"^### .*\{{#{anchor}\}}$", page, re.MULTILINE)
    assert match, anchor
    return _section(page, match.group(0))


def _assert_documented(record: dict, page: str, anchor: str) -> None:
    section = _summary_section(page, anchor)
    for key in record:
        assert f"| `{key}` |" in section, (anchor, key)


def test_every_summary_and_manifest_field_written_is_documented(file_run, pages):
    page = pages["reference/outputs.md"]
    summary = json.loads((file_run / "file.json").read_text())
    _assert_documented(summary, page, "file-summary")
    _assert_documented(summary["engine"], page, "engine")
    for row in summary["stages"]:
        _assert_documented(row, page, "stages")
    batch = json.loads((file_run / "batch-out" / "batch-summary.json").read_text())
    _assert_documented(batch, page, "batch-summary")
    _assert_documented(batch["totals"], page, "batch-totals")
    for row in batch["files"]:
        _assert_documented(row, page, "batch-rows")
    manifest = json.loads((file_run / "batch-out" / "a.manifest.json").read_text())
    _assert_documented(manifest, page, "manifest")


def test_every_field_of_a_live_runs_summary_is_documented(tmp_path, pages):
    out, summary = tmp_path / "out", tmp_path / "live.json"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), "lavfi:testsrc2=size=64x48:rate=25,realtime",
         "-o", str(out), *ONE_PERSON, "--summary-json", str(summary)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # frames are being logged once live.jsonl has a line
        while time.monotonic() < deadline and proc.poll() is None and not any(
                p.stat().st_size for p in out.rglob("live.jsonl")):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    record = json.loads(summary.read_text())
    page = pages["reference/outputs.md"]
    _assert_documented(record, page, "live-summary")
    _assert_documented(record["engine"], page, "engine")
    _assert_documented(record["recording"], page, "recording")
    for row in record["sources"]:
        _assert_documented(row, page, "sources")
    for row in record["stages"]:
        _assert_documented(row, page, "stages")
    live = json.loads(next(out.rglob("live.jsonl")).read_text().splitlines()[0])
    for key in live:
        assert f"| `{key}` |" in _section(page, "## JSON Lines"), key


def test_a_field_the_generator_does_not_describe_stops_the_build(monkeypatch):
    from docs.hooks import outputs_page

    monkeypatch.delitem(outputs_page.BATCH_ROW, "frames_lost")
    with pytest.raises(outputs_page.Undocumented, match="frames_lost"):
        outputs_page.page()


# -- HTTP, MQTT, exit codes ----------------------------------------------------------------------

def test_the_http_page_lists_every_metric_and_the_exit_codes_page_every_code(pages):
    http = pages["reference/http.md"]
    for name in ("posestream_frames_total", "posestream_latency_seconds",
                 "posestream_mqtt_dropped_total", "posestream_events_clients"):
        assert f"| `{name}` |" in http, name
    assert "| `PREFIX/<source>/pose` |" in http and "| `/healthz` |" in http
    codes = pages["reference/exit-codes.md"]
    for code in (0, 1, 2, 129, 130, 141, 143):
        assert f"\n| {code} | " in codes, code
