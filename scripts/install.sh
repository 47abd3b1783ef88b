#!/usr/bin/env bash
# Install posestream for use (not for development): build a wheel from this
# checkout and install it, with its dependencies but no test packages, into a
# virtual environment of its own; print where the posestream command is.
#
# usage: install.sh [-x EXTRAS] [-m] [-w WHEEL_DIR] [VENV]
#   VENV          the virtual environment to make, or to update (default:
#                 ${XDG_DATA_HOME:-~/.local/share}/posestream/venv)
#   -x EXTRAS     optional parts, comma-separated: mqtt, cluster, parquet
#   -m            fetch the model now, into the model cache ($POSESTREAM_CACHE,
#                 else ~/.cache/posestream), rather than on the first run
#   -w WHEEL_DIR  keep the wheel there too (pip install it on other machines)
#
# Run it again after updating the checkout: the new code replaces the old.
# Python: $PYTHON, else python3 (3.10 or later).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_home="${XDG_DATA_HOME:-${HOME:?}/.local/share}"
venv="$data_home/posestream/venv" extras="" fetch=no wheel_dir=""

usage() { sed -n '6,12s/^# //p' "${BASH_SOURCE[0]}"; }
die() { echo "install.sh: $*" >&2; exit 1; }

while getopts "x:mw:h" opt; do
  case "$opt" in
    x) extras="$OPTARG" ;;
    m) fetch=yes ;;
    w) wheel_dir="$OPTARG" ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || { usage >&2; exit 2; }
[ $# -eq 0 ] || venv="$1"
venv="$(realpath -m "$venv")"
python="${PYTHON:-python3}"

# the extras setup.cfg offers, less the developers' own
offered="$("$python" - "$root/setup.cfg" <<'PY'
import configparser, sys
cfg = configparser.ConfigParser(interpolation=None)
cfg.read(sys.argv[1])
print(" ".join(k for k in cfg["options.extras_require"] if k not in ("test", "docs")))
PY
)"
extras="${extras// /}"
for extra in ${extras//,/ }; do
  [[ " $offered " == *" $extra "* ]] || die "-x $extra: no such extra (offered: $offered)"
done

# opencv-python links against libGL and glib at import time (as scripts/bootstrap.sh)
need_apt=()
ldconfig_cmd="$(command -v ldconfig || echo /sbin/ldconfig)"
libs="$("$ldconfig_cmd" -p 2>/dev/null || true)"
grep -q 'libGL.so.1 ' <<<"$libs" || need_apt+=(libgl1)
grep -q 'libglib-2.0.so.0 ' <<<"$libs" || need_apt+=(libglib2.0-0)
if ((${#need_apt[@]})); then
  echo "install.sh: installing system packages: ${need_apt[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-upgrade "${need_apt[@]}"
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv" || die "$venv: cannot make a virtual environment there"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)

# build from a clean copy of the sources: setuptools would otherwise reuse the
# checkout's build/ folder, where files deleted since a former build linger
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/dist"
tar -C "$root" --exclude=__pycache__ \
    -cf - setup.cfg pyproject.toml README.md run_stream.py pipeline stages models \
  | tar -C "$work/src" -xf -
echo "install.sh: building the wheel"
"${pip[@]}" wheel --no-deps -w "$work/dist" "$work/src"
wheel="$(echo "$work"/dist/posestream-*.whl)"
[ -f "$wheel" ] || die "no wheel was built"
if [ -n "$wheel_dir" ]; then
  mkdir -p "$wheel_dir" && cp "$wheel" "$wheel_dir/"
  echo "install.sh: wheel kept at $(realpath "$wheel_dir")/$(basename "$wheel")"
fi

echo "install.sh: installing it and its packages into $venv"
"${pip[@]}" install "$wheel${extras:+[$extras]}"
# the same version number may hold newer code: this checkout's replaces it
"${pip[@]}" install --no-deps --force-reinstall "$wheel"

if [ "$fetch" = yes ]; then
  "$venv/bin/python" - <<'PY'
from models.fetch import fetch_model
from models.registry import DEFAULT_MODEL, get_model
print(f"install.sh: model {DEFAULT_MODEL}: {fetch_model(get_model(DEFAULT_MODEL))}")
PY
fi

"$venv/bin/posestream" --version >/dev/null || die "$venv/bin/posestream does not run"
cat <<DONE
install.sh: $("$venv/bin/posestream" --version) installed${extras:+ with $extras}
  posestream:      $venv/bin/posestream
  posestream-size: $venv/bin/posestream-size   (what this machine can take)
on your PATH:      ln -s $venv/bin/posestream $venv/bin/posestream-size ~/.local/bin/
as a service:      sudo $root/scripts/systemd/install.sh -e $venv/bin/posestream
DONE
