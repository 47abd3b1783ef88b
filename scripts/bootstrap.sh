#!/usr/bin/env bash
# Make .venv at the project root with everything posestream needs, and fetch
# the default model into the user cache. Idempotent; sourced by demo.sh and test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need_apt=()
# opencv-python links against libGL and glib at import time. ldconfig is in
# /sbin, which a user's PATH may lack: without it both would look missing.
ldconfig_cmd="$(command -v ldconfig || echo /sbin/ldconfig)"
libs="$("$ldconfig_cmd" -p 2>/dev/null || true)"
grep -q 'libGL.so.1 ' <<<"$libs" || need_apt+=(libgl1)
grep -q 'libglib-2.0.so.0 ' <<<"$libs" || need_apt+=(libglib2.0-0)
if ((${#need_apt[@]})); then
  # --no-upgrade: install what is missing, never upgrade what the host has
  echo "bootstrap: installing system packages: ${need_apt[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-upgrade "${need_apt[@]}"
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.posestream-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  echo "bootstrap: installing posestream and its packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

.venv/bin/python - <<'PY'
from models.fetch import fetch_model
from models.registry import DEFAULT_MODEL, get_model
print(f"bootstrap: model {DEFAULT_MODEL}: {fetch_model(get_model(DEFAULT_MODEL))}")
PY
