#!/usr/bin/env bash
# Set up, then run the whole test suite (slow end-to-end tests included).
# Extra arguments go to pytest, e.g. `test.sh -m "not slow"`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"
