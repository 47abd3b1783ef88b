#!/usr/bin/env bash
# Write the systemd unit posestream@.service from the template beside this
# script, with the absolute path of this machine's posestream in ExecStart.
#
# usage: install.sh [-e POSESTREAM] [-c CONFIG_DIR] [-d UNIT_DIR]
#   -e POSESTREAM  the posestream executable (default: the one on PATH, else
#                  the one scripts/install.sh installs by default, else the
#                  .venv of this checkout)
#   -c CONFIG_DIR  where the instances' NAME.toml files are (default: /etc/posestream)
#   -d UNIT_DIR    where to write the unit (default: /etc/systemd/system)
#
# It writes the unit and nothing else (no user, no config, no systemctl);
# what to do next is printed. Run it again after moving posestream.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/posestream@.service"
posestream="" config_dir=/etc/posestream unit_dir=/etc/systemd/system

usage() { sed -n '5,10s/^# //p' "${BASH_SOURCE[0]}"; }
die() { echo "install.sh: $*" >&2; exit 1; }

while getopts "e:c:d:h" opt; do
  case "$opt" in
    e) posestream="$OPTARG" ;;
    c) config_dir="$OPTARG" ;;
    d) unit_dir="$OPTARG" ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { usage >&2; exit 2; }

if [ -z "$posestream" ]; then
  posestream="$(type -P posestream || true)"
  user_install="${XDG_DATA_HOME:-${HOME:-/nonexistent}/.local/share}/posestream/venv/bin/posestream"
  [ -n "$posestream" ] || [ ! -x "$user_install" ] || posestream="$user_install"
  [ -n "$posestream" ] || posestream="$here/../../.venv/bin/posestream"
fi
[ -f "$posestream" ] && [ -x "$posestream" ] \
  || die "$posestream: no posestream executable there; give its path with -e"
posestream="$(realpath -s "$posestream")"  # absolute; a virtual environment's links kept
config_dir="$(realpath -sm "$config_dir")"
for path in "$posestream" "$config_dir"; do
  # what ExecStart takes as it is: no quoting, no %-specifier, no $-variable
  [[ "$path" =~ ^/[A-Za-z0-9._/+@-]+$ ]] \
    || die "$path: use a path of letters, digits and ._/+@- only (or write the unit by hand)"
done

# ProtectHome=yes hides /home, /root and /run/user from the service: a
# posestream (or its Python, or the config) there needs read-only instead
protect_home=yes
interpreter="$(head -n 1 "$posestream" | sed -n 's/^#![[:space:]]*\([^[:space:]]*\).*/\1/p')"
for path in "$posestream" "$(realpath -m "$posestream")" "$config_dir" \
            ${interpreter:+"$interpreter" "$(realpath -m "$interpreter")"}; do
  case "$path" in /home/*|/root/*|/run/user/*) protect_home=read-only ;; esac
done

unit="$(<"$template")"
for placeholder in @POSESTREAM@ @CONFIG_DIR@ $'\nProtectHome=yes\n'; do
  [[ "$unit" == *"$placeholder"* ]] || die "$template: no ${placeholder//$'\n'/} in it"
done
unit="${unit//@POSESTREAM@/"$posestream"}"
unit="${unit//@CONFIG_DIR@/"$config_dir"}"
unit="${unit//$'\n'ProtectHome=yes$'\n'/$'\n'"ProtectHome=$protect_home"$'\n'}"

mkdir -p "$unit_dir"
target="$unit_dir/posestream@.service"
printf '# Written by posestream'"'"'s scripts/systemd/install.sh: run it again to change the paths.\n%s\n' \
  "$unit" > "$target.tmp"
mv -f "$target.tmp" "$target"

echo "wrote $target"
echo "  ExecStart=$posestream --config $config_dir/%i.toml --outdir %S/posestream/%i"
[ "$protect_home" = yes ] || echo "  ProtectHome=read-only: posestream, its Python or its config is under a home folder"
cat <<NEXT
next (as root): the user posestream must be able to read and run $posestream
  id posestream || useradd --system --home-dir /var/lib/posestream --shell /usr/sbin/nologin posestream
  mkdir -p $config_dir && cp $here/example.toml $config_dir/cam1.toml   # then edit it
  systemctl daemon-reload && systemctl enable --now posestream@cam1
NEXT
