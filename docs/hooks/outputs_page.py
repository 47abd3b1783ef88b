"""The outputs reference: every file a run writes and every field in it.

Field lists come from the code that writes them (the keypoint log's JSON
Schema, ``csv_columns``, the tables' columns, the OpenPose, COCO and
dataset records of one sample frame, the batch report and totals); their
descriptions live here, and a field that the code writes but this module
does not describe stops the build (``Undocumented``). The summaries' fields
are checked against a real run by ``tests/docs/test_reference.py``.
"""

from __future__ import annotations

import json
from pathlib import Path


class Undocumented(KeyError):
    """A field that the code writes has no description here."""


# One frame with one tracked person: every example below is made from it by the writers' code.
SAMPLE = {"frame": 12, "pts": 0.48, "width": 1280, "height": 720, "people": [{
    "score": 1.2123, "keypoints": [
        [612.4, 240.0, 0.8731], [600.0, 301.5, 0.9012], [552.1, 300.2, 0.8123],
        [530.8, 380.4, 0.7702], [525.3, 452.9, 0.6541], [648.0, 302.7, 0.8455],
        [668.2, 382.1, 0.7911], [675.9, 455.0, 0.7012], [570.3, 470.6, 0.6023],
        [566.0, 580.2, 0.5831], [563.5, 690.1, 0.4217], [630.1, 472.8, 0.6188],
        [635.4, 583.3, 0.5702], [0, 0, 0], [600.7, 228.4, 0.8902], [622.9, 229.1, 0.8818],
        [588.2, 236.0, 0.5310], [0, 0, 0]], "id": 3}]}

FILES = {  # path pattern -> what it is (input clip.mp4, output folder OUT)
    "video": "the annotated video: H.264 in MP4, the input's frame count, rate, timestamps and "
             "audio (for an image: the annotated image, under the input's name); not with "
             "`--no-video`",
    "jsonl": "the keypoint log, one JSON object per frame ([below](#json-lines))",
    "openpose": "`--format openpose`: a file per frame, as OpenPose's `--write_json`; for an "
                "image `photo.jpg`: one `OUT/photo_keypoints.json`",
    "coco": "`--format coco`: COCO keypoint results of this input",
    "csv": "`--format csv`: a row per person per frame",
    "manifest": "what a batch checks to skip a complete input on the next run "
                "([below](#manifest))",
    "keypoints": "every finished input's CSV rows one after another (whatever `--format`)",
    "parquet": "the same as Parquet, where pyarrow is installed (the `parquet` extra)",
    "frames": "a row per processed frame, people or not",
    "people": "a row per tracked person per input",
    "schema": "a JSON Schema of one JSON Lines line, with the 18 part names in order",
    "dataset": "`--format coco`: one COCO keypoint dataset over all the run's inputs",
    "batch_summary": "batches: a row per input and the totals ([below](#batch-summary))",
}
LIVE_FILES = {
    "OUT/<source>/<source>-<UTC start>-<n>.mkv": "a segment of video (Matroska): annotated, or "
        "the camera's own packets with `--record raw`; none with `--record none`",
    "OUT/<source>/<source>-<UTC start>-<n>.jsonl (.csv, .openpose/, .coco.json)":
        "the segment's keypoint files, one per `--format`, records with `wall`",
    "OUT/<source>/live.jsonl": "every record of the source, one stable path to `tail -F` "
        "across segments, reconnects and restarts",
    "OUT/<source>/live.jsonl.1": "the previous `live.jsonl`, after a roll at `--live-log-size`",
    "OUT/<source>/.posestream.lock": "held while a run writes the folder (its pid and host "
        "inside); a second run for the source is refused",
}

PERSON = {
    "score": "tf-pose-estimation's person score: (sum of part confidences + sum of limb PAF "
             "scores) / parts, about 0.3 (the weakest person kept) to 2",
    "id": "the track id, stable across frames, never reused; only with tracking (the default)",
    "keypoints": "18 `[x, y, confidence]` in original frame pixels, in the part order below; "
                 "`[0, 0, 0]` for a part not found",
}
CSV = {
    "source": ("text", "the input as the run names it: the path given (a file run), the path "
                       "from the batch's root (a batch), the source's name (live)"),
    "frame": ("int64", "as in the JSON Lines log"),
    "pts": ("float64", "as in the JSON Lines log"),
    "wall": ("float64", "live runs only: capture time, Unix seconds"),
    "width": ("int64", "the frame's width in pixels"),
    "height": ("int64", "the frame's height in pixels"),
    "id": ("int64", "the track id; empty (float64, all NaN) with `--no-track`"),
    "score": ("float64", "the person's score"),
}
FRAMES_CSV = {"source": "as in the keypoint CSV", "frame": "as in the JSON Lines log",
              "pts": "as in the JSON Lines log", "width": "the frame's width",
              "height": "the frame's height", "people": "people found in the frame"}
PEOPLE_CSV = {
    "source": "as in the keypoint CSV", "id": "the track id",
    "first_frame": "first frame the person was seen", "last_frame": "last frame seen",
    "first_pts": "time of the first frame, seconds", "last_pts": "time of the last frame",
    "duration": "`last_pts - first_pts`", "frames_seen": "frames the person was found in",
    "mean_score": "mean person score over those frames",
}
OPENPOSE = {
    "version": "1.3 (the version that added `person_id`)",
    "people": "every person found (an empty list for nobody)",
    "person_id": "`[id]` with tracking, else `[-1]`",
    "pose_keypoints_2d": "the 18 parts flattened: x0, y0, c0, x1, ... (OpenPose's COCO "
                         "model order, the same as ours)",
    "face_keypoints_2d": "empty (no face model)", "hand_left_keypoints_2d": "empty",
    "hand_right_keypoints_2d": "empty", "pose_keypoints_3d": "empty",
    "face_keypoints_3d": "empty", "hand_left_keypoints_3d": "empty",
    "hand_right_keypoints_3d": "empty",
}
COCO_RESULT = {
    "image_id": "the input's number in the run x 10^9 + the frame index: the ids of the "
                "run's dataset (0 x 10^9 for live segments)",
    "category_id": "1, person",
    "keypoints": "17 COCO keypoints (ours less the neck) as `x, y, confidence`; `0, 0, 0` "
                 "when missing",
    "score": "half the log's score, within 0 to 1 (the same ranking)",
    "track_id": "the track id, with tracking",
}
DATASET = {
    "info": "`description`, `version`, `date_created`",
    "licenses": "empty",
    "images": "one per processed frame",
    "annotations": "one per person",
    "categories": "one: person, with its keypoint names and skeleton",
}
DATASET_IMAGE = {
    "id": "the input's number in the run (from 1, in sorted order) x 10^9 + `frame_index`",
    "file_name": "the input's path relative to the batch's root (the path its outputs mirror)",
    "frame_index": "the frame's `frame` in the log (0 for an image)",
    "width": "the frame's width", "height": "the frame's height",
    "pts": "the frame's time, seconds",
}
DATASET_ANNOTATION = {
    "id": "the annotation's number, from 1",
    "image_id": "its image's `id`",
    "category_id": "1, person",
    "keypoints": "17 `[x, y, v]`: v = 2 for a part found, 0 (with x = y = 0) for one not found",
    "num_keypoints": "parts found",
    "keypoint_scores": "the 17 confidences",
    "score": "as in the COCO results",
    "bbox": "`[x, y, width, height]` around the parts found",
    "area": "the box's width x height",
    "iscrowd": "0",
    "track_id": "the track id, with tracking",
}
CATEGORY = {"id": "1", "name": "`person`", "supercategory": "`person`",
            "keypoints": "the 17 COCO keypoint names", "skeleton": "19 limbs, 1-based pairs"}

FILE_SUMMARY = {  # --summary-json of a file or image run (run_stream._report)
    "input": "the input's path",
    "outputs": "the files written (final names, or `.partial` names when kept aside)",
    "state": "`done` or `interrupted`",
    "partial": "`true` when the run was stopped: its outputs hold only `frames_done` frames "
               "(or, when they were kept in `work`, the earlier outputs stay)",
    "frames_done": "frames the outputs hold, those resumed from included",
    "frames_expected": "frames the whole input gives (`null` when not known)",
    "frames_resumed_from": "frames an earlier run did, taken from its checkpoint (0: none)",
    "frames_processed": "frames this run processed",
    "work": "the work folder the stopped run's work is kept in (`OUT/.partial/<stem>`), "
            "`null` when none is kept",
    "resumes_after": "frames a rerun keeps from the checkpoint in `work` (`null` when none "
                     "is kept)",
    "frames_read": "frames decoded", "frames_written": "frames processed and written",
    "truncated": "the input ended early (read up to its last decodable frame)",
    "frames_lost": "undecodable frames skipped in a damaged input",
    "seconds": "wall time of the run", "fps": "frames written per second of it",
    "engine": "what ran the network ([below](#engine))",
    "stages": "one row per pipeline stage ([below](#stages))",
}
BATCH_ROW = {  # stages.jobs.batch.FileReport.as_dict
    "input": "the input's path from the batch's root",
    "status": "`done`, `skipped` (already complete), `failed`, `interrupted` or `pending` "
              "(never started: the run was stopped)",
    "frames": "frames written (a skipped input: as its manifest recorded)",
    "mean_people": "people per frame (`null` when not known)",
    "fps": "frames per second of the input's own time (`null` when not known)",
    "people": "people found over all frames (`null` when not known)",
    "seconds": "the input's processing time (`null` when not known)",
    "truncated": "as in the file summary", "frames_lost": "as in the file summary",
    "error": "why it failed (empty otherwise)",
    "outputs": "where its outputs went (nothing for an input that did not finish)",
    "partial": "the work folder an interrupted input's work is kept in, "
               "`[\"OUT/.partial/<stem>\"]`, and the next run resumes from (empty otherwise)",
    "frames_resumed_from": "frames an earlier run did, taken from the input's checkpoint",
    "frames_processed": "frames this run processed (`frames` less those resumed from)",
    "engine": "what processed it ([below](#engine)); absent when not known",
}
BATCH_TOTALS = {  # stages.display.console.batch_totals
    "files": "inputs in the batch",
    "done": "inputs processed now", "skipped": "inputs already complete",
    "failed": "inputs that failed", "interrupted": "inputs cut short by a stop",
    "pending": "inputs never started", "frames": "the sum of the rows' frames",
    "people_per_frame": "over the rows whose people are known (absent when none is)",
    "seconds": "wall time of this run",
    "fps": "frames this run processed (rows not skipped, less those resumed from) per "
           "second of it",
}
LIVE_SUMMARY = {  # stages.jobs.live.LiveJob.snapshot
    "sources": "one row per source ([below](#sources))",
    "stages": "one row per pipeline stage ([below](#stages))",
    "seconds": "wall time of the run",
    "failures": "sources that gave up, with the reason",
    "engine": "what ran the network ([below](#engine))",
    "recording": "what the segments record and what retention did ([below](#recording))",
    "mqtt": "the broker connection with `--mqtt` ([below](#mqtt)), else `null`",
}
SOURCE_ROW = {  # stages.publish.monitor.SourceMonitor.row
    "source": "the source's name",
    "state": "`connecting`, `live`, `reconnecting`, `given up` or `stopped`",
    "frames": "frames processed and written",
    "dropped": "frames dropped because the pipeline was behind",
    "rate_dropped": "frames dropped over `--max-fps`",
    "reconnect_attempts": "every reconnect attempt", "reconnects": "attempts that got a picture",
    "last_error": "the last failure, credentials masked (`null` if none)",
    "fps": "frames processed per second over the last 10 s",
    "latency_p50_ms": "latency, capture to written, median of the last 2000 frames",
    "latency_p95_ms": "the same, 95th percentile",
}
STAGE_ROW = {  # pipeline.runner.PipelineStatistics.stage_rows
    "stage": "the stage's name", "workers": "its threads or model copies",
    "items": "items it finished", "busy_seconds": "time inside it, all workers",
    "busy_pct": "busy share of its workers' time", "mean_ms": "mean time per item",
    "queue": "items in its output queue now", "queue_capacity": "that queue's capacity",
    "queue_peak": "the most it held", "dropped": "items the queue dropped (live runs)",
}
ENGINE = {  # stages.jobs.engine.EngineRecord.as_dict
    "backend": "`tf`, `openvino`, `neuron` (or a plug-in backend's name)",
    "precision": "what the model copies ran (`/`-joined if they differ)",
    "requested_precision": "what `--precision` asked for",
    "precision_chosen": "for `auto`: what was picked and why; else `null`",
    "precision_trade": "what the precision costs and gains, as measured (the precision "
                       "table's row), or `null`",
    "model_cache": "`hit`, `built`, `off`, or `null` for engines without a cache",
    "devices": "one entry per model copy (`cpu`, `gpu:0`, `neuron:2`)",
    "model": "the registry name, or the `--graph` path",
    "resolution": "the network input, `WxH`", "host": "the machine's name",
    "posestream_version": "the version that made the results",
}
RECORDING = {
    "record": "`annotated`, `raw` or `none`", "retain": "`--retain` in seconds, or `null`",
    "max_disk": "`--max-disk` in bytes, or `null`",
    "used": "bytes the counted folders take (`null` without limits)",
    "deleted": "segment files deleted by retention", "freed": "bytes they held",
    "raw_packets": "packets copied per source with `--record raw`",
}
MQTT = {
    "broker": "the broker's URL, credentials masked",
    "state": "`connecting`, `connected`, `no answer` or `down`",
    "unacknowledged": "messages the broker has not acknowledged",
    "dropped": "records dropped on a full queue",
    "seconds_without_answer": "how long the broker has left a connection or a message "
                              "unanswered (`null`: nothing waits)",
}
MANIFEST = {
    "input": "the input's identity: `size`, `mtime_ns` and `head_tail_sha256` (of its "
             "first and last MiB)",
    "settings": "the settings that shape the outputs (resolution, model, graph, postprocess, "
                "precision, formats, track, video; with a video preset and audio; "
                "track_memory with tracking; video_stream when given)",
    "frames": "frames written", "outputs": "the outputs' names",
    "engine": "what processed it ([above](#engine))",
    "truncated": "as in the file summary", "frames_lost": "as in the file summary",
    "people": "people found over all frames", "seconds": "its processing time",
}
SUMMARIES = (("File and image runs: `--summary-json`", "file-summary", FILE_SUMMARY),
             ("Batches: `batch-summary.json` (and `--summary-json`)", "batch-summary",
              {"files": "one row per input, sorted", "totals": "what the rows add up to"}),
             ("A batch's rows (`files`)", "batch-rows", BATCH_ROW),
             ("A batch's `totals`", "batch-totals", BATCH_TOTALS),
             ("Live runs: `--summary-json`", "live-summary", LIVE_SUMMARY),
             ("`sources`", "sources", SOURCE_ROW), ("`stages`", "stages", STAGE_ROW),
             ("`engine`", "engine", ENGINE), ("`recording`", "recording", RECORDING),
             ("`mqtt`", "mqtt", MQTT), ("Manifest: `OUT/clip.manifest.json`", "manifest",
                                        MANIFEST))


def page() -> str:
    """The Markdown of ``reference/outputs.md``."""
    return "\n".join([_INTRO, files_section(), json_lines_section(), csv_section(),
                      tables_section(), openpose_section(), coco_section(), summaries_section()])


_INTRO = """# Output files and fields

Made from the writers' code when the site is built: the field lists are
what the code writes, and the examples are one sample frame put through the
real writers. How outputs are committed (and what `.partial` names mean) is
in [How it works](../how-it-works.md#outputs-commit-as-a-set).
"""


def files_section() -> str:
    """Where each file goes, for input ``clip.mp4`` and ``-o OUT``."""
    from stages.outputs.coco_dataset import dataset_path
    from stages.outputs.file_set import manifest_path
    from stages.outputs.formats import format_path
    from stages.outputs.tables import TablePaths

    out, clip = Path("OUT"), Path("clip.mp4")
    tables = TablePaths.of(out)
    paths = {"video": out / "clip.mp4",
             **{fmt: format_path(fmt, out, "clip") for fmt in ("jsonl", "openpose", "coco", "csv")},
             "manifest": manifest_path(out, clip), "keypoints": tables.keypoints,
             "parquet": tables.parquet, "frames": tables.frames, "people": tables.people,
             "schema": tables.schema, "dataset": dataset_path(out),
             "batch_summary": out / "batch-summary.json"}
    paths["openpose"] = Path(f"{paths['openpose']}/clip_000000000012_keypoints.json")
    rows = [f"| `{path}` | {_describe(FILES, key)} |" for key, path in paths.items()]
    live = [f"| `{path}` | {text} |" for path, text in LIVE_FILES.items()]
    return ("## Files\n\nA file or batch run, input `clip.mp4`, `-o OUT` (a batch mirrors the "
            "inputs' folders under `OUT`; the run's tables, dataset and summary are at its "
            "top):\n\n| path | what |\n|---|---|\n" + "\n".join(rows)
            + "\n\nAn input at the top of `OUT` whose outputs would take one of these names "
            "(an input `people.mp4` writes `people.csv`) leaves it to the input: the run's table "
            "is then `people.table.csv` (`keypoints.table.csv`, `frames.table.csv`, "
            "`keypoints.dataset.coco.json`)."
            + "\n\nA live run, per source (`--segment` minutes a segment):\n\n| path | what |\n"
            "|---|---|\n" + "\n".join(live) + "\n")


def json_lines_section() -> str:
    """The keypoint log's fields, from its JSON Schema (``log_schema``)."""
    from stages.frames import PART_NAMES
    from stages.outputs.keypoint_log import log_schema

    schema = log_schema()
    rows = [f"| `{name}` | {prop.get('type', 'array')} | {_record_note(name, prop)} |"
            for name, prop in schema["properties"].items()]
    person = schema["$defs"]["person"]["properties"]
    rows += [f"| `people[].{name}` | {prop.get('type')} | {_describe(PERSON, name)} |"
             for name, prop in person.items()]
    parts = ", ".join(f"{i} `{name}`" for i, name in enumerate(PART_NAMES))
    return ("## JSON Lines\n\n`clip.jsonl`, the live segments' `.jsonl`, `live.jsonl`, the "
            "`/events` stream and MQTT's `pose` topic hold one record per frame, in frame "
            "order:\n\n```json\n" + json.dumps(SAMPLE, separators=(",", ":")) + "\n```\n\n"
            "| field | type | meaning |\n|---|---|---|\n" + "\n".join(rows)
            + "\n| `source` | string | the source's name: `live.jsonl`, `/events` and MQTT "
            "records only |\n\nThe 18 parts, in keypoint order: " + parts
            + ". x and y are rounded to 2 decimals, confidences and scores to 4, `pts` to 6."
            " `OUT/keypoints.schema.json` is this record's JSON Schema.\n")


def _record_note(name: str, prop: dict) -> str:
    notes = {"frame": "0-based index of the frame in decode order, gapless (with "
                      "`--frame-step`/`--start`/`--end`: its number in the whole file)",
             "people": "every person found (possibly none)"}
    return notes.get(name) or prop.get("description") or _missing(name)


def csv_section() -> str:
    """The CSV columns (``csv_columns``)."""
    from stages.frames import PART_NAMES
    from stages.outputs.formats import csv_columns, csv_rows

    columns = csv_columns(wall_clock=True)
    part_columns = {f"{name}_{axis}" for name in PART_NAMES for axis in "xyc"}
    fixed = [c for c in columns if c not in part_columns]
    rows = [f"| `{c}` | {_describe(CSV, c)[0]} | {_describe(CSV, c)[1]} |" for c in fixed]
    parts = [c for c in columns if c not in fixed]
    example = csv_rows(dict(SAMPLE, wall=1764700000.123), "cam1")[0]
    header_line = ",".join(columns[:12]) + ",..."
    row_line = ",".join("" if v is None else str(v) for v in example[:12]) + ",..."
    return ("## CSV\n\n`clip.csv` (and `OUT/keypoints.csv`, all inputs) has one row per "
            "person per frame; a frame with nobody has no row, the header is always there. "
            "`pandas.read_csv` reads it as it is.\n\n```text\n" + header_line + "\n"
            + row_line + "\n```\n\n| column | pandas dtype | meaning |\n|---|---|---|\n"
            + "\n".join(rows) + "\n\nThen x, y and confidence (float64) of the 18 parts, in "
            "the log's order: " + ", ".join(f"`{c}`" for c in parts) + ". A part not found "
            "has empty x and y (NaN in pandas) and confidence `0.0`: `df[df.nose_c > 0]` keeps "
            "the rows with a nose.\n")


def tables_section() -> str:
    """``frames.csv`` and ``people.csv``."""
    from stages.frames import PART_NAMES
    from stages.outputs.tables import FRAME_COLUMNS, PEOPLE_COLUMNS

    frames = "\n".join(f"| `{c}` | {_describe(FRAMES_CSV, c)} |" for c in FRAME_COLUMNS)
    found = {f"{name}_found" for name in PART_NAMES}
    people = "\n".join(f"| `{c}` | {_describe(PEOPLE_CSV, c)} |" for c in PEOPLE_COLUMNS
                       if c not in found)
    return ("## The run's tables\n\nEvery file or batch run ends with them, made from the "
            "JSON Lines logs of the inputs that finished.\n\n### `OUT/frames.csv`\n\n"
            "| column | meaning |\n|---|---|\n" + frames + "\n\n### `OUT/people.csv`\n\n"
            "Only its header with `--no-track`.\n\n| column | meaning |\n|---|---|\n" + people
            + "\n\nThen, per part, the share of the person's frames in which it was found: "
            + ", ".join(f"`{c}`" for c in PEOPLE_COLUMNS if c in found) + ".\n")


def openpose_section() -> str:
    """OpenPose ``--write_json`` (``openpose_document``)."""
    from stages.outputs.formats import openpose_document

    document = openpose_document(SAMPLE)
    keys = [*document, *document["people"][0]]
    rows = "\n".join(f"| `{k}` | {_describe(OPENPOSE, k)} |" for k in keys)
    return ("## OpenPose JSON\n\nOne file per frame, also with nobody in it, as OpenPose "
            "1.3's `--write_json` writes for its COCO model (not BODY_25):\n\n```json\n"
            + _pretty(document) + "\n```\n\n| key | meaning |\n|---|---|\n" + rows + "\n")


def coco_section() -> str:
    """COCO results (``coco_records``) and the dataset (``CocoDataset``)."""
    from stages.outputs.coco_dataset import annotation, person_category
    from stages.outputs.formats import coco_records

    result = coco_records(SAMPLE, 1)[0]
    note = annotation(result, result["image_id"], 1)
    image = {"id": result["image_id"], "file_name": "day1/clip.mp4",
             "frame_index": SAMPLE["frame"], "width": SAMPLE["width"],
             "height": SAMPLE["height"], "pts": SAMPLE["pts"]}
    category = person_category()
    sections = [("images[]", DATASET_IMAGE, image), ("annotations[]", DATASET_ANNOTATION, note),
                ("categories[]", CATEGORY, category)]
    text = ("## COCO\n\n### Results: `clip.coco.json`\n\nOne array of COCO keypoint results, "
            "a record per person:\n\n```json\n" + json.dumps([result]) + "\n```\n\n"
            "| key | meaning |\n|---|---|\n"
            + "\n".join(f"| `{k}` | {_describe(COCO_RESULT, k)} |" for k in result)
            + "\n\n### Dataset: `OUT/keypoints.coco.json`\n\nOne COCO keypoint dataset over "
            "the run's inputs (`keypoints.dataset.coco.json` if an input at the batch's root "
            "is named `keypoints.*`); `pycocotools.coco.COCO(path)` loads it, and "
            "`COCO(dataset).loadRes(\"OUT/clip.coco.json\")` takes the results.\n\n"
            "| key | meaning |\n|---|---|\n"
            + "\n".join(f"| `{k}` | {_describe(DATASET, k)} |" for k in DATASET))
    for title, descriptions, example in sections:
        text += (f"\n\n`{title}`:\n\n| key | meaning |\n|---|---|\n"
                 + "\n".join(f"| `{k}` | {_describe(descriptions, k)} |" for k in example))
    return text + "\n"


def summaries_section() -> str:
    """The JSON summaries; the batch rows' and totals' keys are checked against the code."""
    from stages.display.console import batch_totals
    from stages.jobs.batch import FileReport

    row = FileReport(input="clip.mp4", engine={}).as_dict()
    _check_keys("batch rows", row, BATCH_ROW)
    _check_keys("batch totals", batch_totals([dict(row, people=1, frames=1)], 1.0), BATCH_TOTALS)
    text = "## Summaries and manifests\n"
    for title, anchor, fields in SUMMARIES:
        rows = "\n".join(f"| `{key}` | {meaning} |" for key, meaning in fields.items())
        text += f"\n### {title} {{#{anchor}}}\n\n| key | meaning |\n|---|---|\n{rows}\n"
    return text


def _check_keys(what: str, record: dict, documented: dict) -> None:
    missing = [key for key in record if key not in documented]
    if missing:
        raise Undocumented(f"{what}: {', '.join(missing)} written but not described in "
                           "docs/hooks/outputs_page.py")


def _describe(descriptions: dict, key: str):
    if key not in descriptions:
        _missing(key)
    return descriptions[key]


def _missing(key: str):
    raise Undocumented(f"{key!r} is written but not described in docs/hooks/outputs_page.py")


def _pretty(value, indent: str = "") -> str:
    """JSON with objects indented and lists of numbers on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)
