#!/usr/bin/env bash
# The main job: set up, then run the pipeline (on a generated clip with people
# when no input is given). Arguments go to posestream, e.g. `demo.sh my.mp4 -o out`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/posestream "$@"
