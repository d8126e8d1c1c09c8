#!/usr/bin/env bash
# Serves the portal from a fresh SQLite database on a free loopback port and
# runs check.mjs against every page in tests/pages.json.
# Needs: node/npm, java (11+), chromium (CHROMIUM=/path to override).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${EMETERAI_BIN:-$root/target/debug/emeterai}
if [ ! -x "$bin" ]; then
  cargo build --manifest-path "$root/Cargo.toml"
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi

work=$(mktemp -d)
log="$work/server.log"
# Staff accounts for the staff pages of the list: one with its second
# factor (its recovery codes sign the checker in, one per page), and one
# without, whose sign-in shows the enrolment page.
export PAGECHECK_STAFF_EMAIL=pagecheck@staff.test
export PAGECHECK_STAFF_PASSWORD="pagecheck staff password"
added=$(printf '%s\n' "$PAGECHECK_STAFF_PASSWORD" | DATABASE_URL="$work/pagecheck.sqlite3" EMETERAI_DATA_DIR="$work" \
  EMETERAI_BCRYPT_COST=4 "$bin" staff add --email "$PAGECHECK_STAFF_EMAIL")
PAGECHECK_STAFF_CODES=$(printf '%s\n' "$added" | sed -n '/^Recovery codes/,$p' | tail -n +2 | tr -d ' ' | tr '\n' ' ')
export PAGECHECK_STAFF_CODES
printf '%s\n' "$PAGECHECK_STAFF_PASSWORD" | DATABASE_URL="$work/pagecheck.sqlite3" EMETERAI_DATA_DIR="$work" \
  EMETERAI_BCRYPT_COST=4 EMETERAI_STAFF_SECOND_FACTOR=off "$bin" staff add --email enrol@staff.test >/dev/null
DATABASE_URL="$work/pagecheck.sqlite3" EMETERAI_DATA_DIR="$work" EMETERAI_BIND=127.0.0.1:0 \
  EMETERAI_BCRYPT_COST=4 EMETERAI_LOG_FORMAT=text RUST_LOG=info \
  "$bin" serve >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=""
for _ in $(seq 1 150); do
  port=$(grep -o 'listening port=[0-9]*' "$log" | head -1 | cut -d= -f2 || true)
  [ -n "$port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
if [ -z "$port" ]; then
  echo "pagecheck: the portal did not start" >&2
  cat "$log" >&2
  exit 1
fi

# Screenshots and HTML stay after the run (CI keeps them as artefacts).
out=${PAGECHECK_OUT:-$root/target/pagecheck}
rm -rf "$out"
echo "pagecheck: screenshots and HTML go to $out"
PAGECHECK_SERVER_LOG="$log" node "$here/check.mjs" --base "http://127.0.0.1:$port" --pages "$root/tests/pages.json" --out "$out"
