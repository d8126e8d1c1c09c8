#!/usr/bin/env bash
# The deployment files as shipped, installed as the README says, checked by
# the tools that will read them: `nginx -t` on deploy/nginx/emeterai.conf in
# Debian's nginx (sites-enabled), and `systemd-analyze verify` on the
# systemd unit. Run as root on a Debian machine with nginx (CI does); it
# removes what it installed, whatever happens.
#   deploy/check-shipped.sh [path/to/emeterai]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target/debug/emeterai}

site=/etc/nginx/sites-enabled/emeterai-check
placed_bin=""
cleanup() {
  rm -f "$site"
  [ -n "$placed_bin" ] && rm -f "$placed_bin"
  return 0
}
trap cleanup EXIT

echo "check: nginx -t with deploy/nginx/emeterai.conf in $site"
cp "$here/nginx/emeterai.conf" "$site"
nginx -t

if command -v systemd-analyze >/dev/null 2>&1; then
  echo "check: systemd-analyze verify deploy/systemd/emeterai@.service"
  # The unit runs /usr/local/bin/emeterai; put this build there if nothing is.
  if [ ! -e /usr/local/bin/emeterai ]; then
    cp "$bin" /usr/local/bin/emeterai
    placed_bin=/usr/local/bin/emeterai
  fi
  unit_dir=$(mktemp -d)
  cp "$here/systemd/emeterai@.service" "$unit_dir/emeterai@8081.service"
  # (The instance name stands for a port; verify needs a concrete one.)
  out=$(systemd-analyze verify "$unit_dir/emeterai@8081.service" 2>&1 || true)
  rm -rf "$unit_dir"
  # Only warnings about this machine (no such user yet, no systemd running
  # as PID 1 in a container) are acceptable; anything about the unit is not.
  bad=$(printf '%s\n' "$out" | grep -v -e '^$' -e 'User=emeterai' -e 'Failed to create' \
    -e 'not running' -e 'System has not been booted' -e 'Failed to connect to bus' \
    -e 'emeterai@8081.service: Failed to' || true)
  if [ -n "$bad" ]; then
    printf 'systemd-analyze verify reports:\n%s\n' "$out" >&2
    exit 1
  fi
fi
echo "check: shipped deployment files pass"
