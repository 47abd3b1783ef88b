"""Batches past one machine: whole files sent to a Dask distributed cluster.

Each task runs the batch pipeline on one input on a Dask worker and
writes its outputs and manifest under the output root, which every worker
must see at the same path (a shared file system). Dask does the scheduling,
retries of lost workers and data transfer; nothing here schedules. The work
folders and checkpoints (``stages.outputs.resume``) are under the output
root too, so a task resumes an input from its last checkpoint whichever
worker wrote it: one of an interrupted earlier run, or of a worker that died.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from stages.jobs.batch import BatchJob, FileReport, plan_batch
from stages.sources.inputs import BatchItem
from stages.settings import JobConfig

log = logging.getLogger(__name__)


def process_file(path: str, rel: str, outdir: str, config: JobConfig, number: int = 1,
                 restart: bool = False) -> dict:
    """One input on a worker, as a batch of one: the same pipeline and finishing
    step (outputs as a set, then its manifest) as a local batch; returns its report.
    ``number`` is its place in the whole batch (it numbers its COCO image ids).

    It resumes from the input's checkpoint under ``outdir``, as a local batch
    does (``stages.outputs.resume``): one an earlier run left, or a worker that
    died on this input (Dask gives the task to another worker), unless
    ``restart`` (``--force``)."""
    item = BatchItem(Path(path), Path(rel))
    try:  # the client planned the batch: what is sent here is to be done
        job = BatchJob([item], Path(outdir), config, lanes=1, force=True, restart=restart,
                       numbers={item.key: number})
        return job.run()[item.key].as_dict()
    except Exception as exc:  # reported per file; the batch goes on
        report = FileReport(item.key)
        report.status, report.error = "failed", str(exc)
        return report.as_dict()


def run_on_cluster(address: str, items: list[BatchItem], outdir: Path, config: JobConfig, *,
                   force: bool = False, on_file: Callable[[dict], None] | None = None
                   ) -> dict[str, dict]:
    """Send every pending input to the Dask scheduler at ``address``; wait for all.

    Returns:
        A report dict per input (skipped ones included), by input key.
    """
    from dask.distributed import Client, as_completed

    todo, reports = plan_batch(items, outdir, config, force=force)
    out = {key: r.as_dict() for key, r in reports.items()}
    numbers = {item.key: n for n, item in enumerate(items, 1)}
    with Client(address, timeout="30s") as client:
        log.info("cluster %s: %d workers, %d files", address,
                 len(client.scheduler_info().get("workers", {})), len(todo))
        futures = [client.submit(process_file, str(item.path.resolve()), str(item.rel),
                                 str(Path(outdir).resolve()), config, numbers[item.key], force,
                                 key=f"posestream-{item.key}", pure=False)
                   for item in todo]
        for future in as_completed(futures):
            report = future.result()
            out[report["input"]] = report
            if on_file is not None:
                on_file(report)
    return out
