"""What every bench does first: the repository on ``sys.path``, one BLAS thread.

A bench script's first import, before numpy or OpenCV load::

    import _setup  # noqa: F401  (first: sys.path and threads)

(bench/ is the running script's folder, so Python finds this module.) It

- puts the repository root and bench/ on ``sys.path``, so ``stages``,
  ``models``, ``tests.support`` and the other benches import from this
  checkout without installing it;
- sets ``OPENBLAS_NUM_THREADS=1`` as ``run_stream.py`` does: a multi-threaded
  BLAS fighting the inference threads for the cores stalls the post-network
  matrix products (0.5 ms -> 20 ms seen), and the variable works only before
  numpy loads;
- sets ``TF_CPP_MIN_LOG_LEVEL=3``, so TensorFlow's C++ start-up lines stay out
  of the benches' tables.

A value already in the environment is kept (``OPENBLAS_NUM_THREADS=2
.venv/bin/python bench/...`` measures two BLAS threads).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

for _folder in (BENCH, ROOT):  # the root first on the path, bench/ after it
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
