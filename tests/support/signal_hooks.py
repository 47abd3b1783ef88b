"""Run the command line with a stop signal sent at one precise moment of the run.

    python -m tests.support.signal_hooks MOMENT [posestream arguments...]

MOMENT is where SIGINT reaches the main thread (``signal.pthread_kill``, so
its handler runs before the main thread goes on, with no timing involved):

- ``file-commit``: a file run has processed its last frame and is putting its
  outputs in place (``FileOutputs.close`` of a complete run, its final remux);
- ``batch-last-file``: a batch has just finished its last input, before the
  run returns;
- ``batch-records``: a batch run has returned and is writing its records
  (the first summary JSON).
"""

from __future__ import annotations

import functools
import signal
import sys
import threading


def _interrupt() -> None:
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _before(owner, name: str, when=lambda *a, **k: True, after: bool = False) -> None:
    """Have ``owner.name`` send SIGINT once, before (or ``after``) the call where ``when``."""
    original = getattr(owner, name)
    sent = []

    @functools.wraps(original)
    def hooked(*args, **kwargs):
        fire = not sent and when(*args, **kwargs)
        if fire and not after:
            sent.append(_interrupt())
        value = original(*args, **kwargs)
        if after and not sent and when(*args, **kwargs):
            sent.append(_interrupt())
        return value

    setattr(owner, name, hooked)


def _install(moment: str) -> None:
    if moment == "file-commit":
        from stages.outputs.file_set import FileOutputs
        _before(FileOutputs, "close", when=lambda outputs, *a, **k: outputs._complete)
    elif moment == "batch-last-file":
        from stages.jobs.batch import BatchJob
        _before(BatchJob, "_finish", after=True,
                when=lambda job, *a: all(r.status == "done" for r in job.reports.values()))
    elif moment == "batch-records":
        import stages.display.console as console
        _before(console, "write_summary_json")
    else:
        raise SystemExit(f"unknown moment {moment!r}")


if __name__ == "__main__":
    _install(sys.argv[1])
    import run_stream
    sys.exit(run_stream.main(sys.argv[2:]))
