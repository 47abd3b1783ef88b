"""``posestream-report OUT``: make a run's report again from its output folder.

The report (``stages.outputs.report``) is made from the tables a file or batch
run left in ``OUT`` and, for the processing speed, the run's summary: the
batch's ``OUT/batch-summary.json``, or the file given with ``--summary`` (a
file run's ``--summary-json``). Also ``python -m stages.cli.report OUT``.
Exit status: 0 written, 1 an error (one line on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stages.errors import InputError, PosestreamError
from stages.outputs.report import REPORT_NAME, write_report

__all__ = ["build_parser", "main"]

BATCH_SUMMARY = "batch-summary.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posestream-report",
        description=f"Write OUT/{REPORT_NAME}, a self-contained page of plots of a run, from "
                    "the tables a file or batch run wrote in OUT.")
    parser.add_argument("outdir", metavar="OUT", type=Path, help="the run's output folder")
    parser.add_argument("--summary", metavar="JSON", type=Path, default=None,
                        help=f"the run's summary, for the processing speed: a file run's "
                             f"--summary-json (default: OUT/{BATCH_SUMMARY} when there is one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        path = write_report(args.outdir, summary=_summary(args.outdir, args.summary))
    except (PosestreamError, OSError) as exc:
        print(f"posestream-report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("matplotlib"):
            raise
        print("posestream-report: error: matplotlib is not installed (pip install matplotlib)",
              file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def _summary(outdir: Path, given: Path | None) -> dict | None:
    """The summary to read the speed from: ``given``, else the batch's, else None."""
    path = given if given is not None else outdir / BATCH_SUMMARY
    if given is None and not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not a summary (not JSON: {exc})") from exc
    if not isinstance(summary, dict):
        raise InputError(f"{path}: not a summary (not a JSON object)")
    return summary


if __name__ == "__main__":
    sys.exit(main())
