#!/usr/bin/env bash
# Deadline rehearsal on one machine: PostgreSQL, three portal instances,
# nginx in front (deploy/nginx/emeterai.conf, ports and paths rewritten),
# and the load generator (examples/loadgen.rs) playing citizens above one
# instance's hashing capacity. Midway one instance is killed with SIGKILL
# and started again. The load generator then checks that no acknowledged
# registration was lost or doubled, no mail lost or sent twice, and that
# every citizen finished (those on the killed instance by a retry through
# another one). Exits non-zero when a check fails.
#
#   deploy/rehearse.sh                 # release build, 120 s at 4 citizens/s
#   REHEARSAL_SHORT=1 REHEARSAL_PROFILE=debug deploy/rehearse.sh   # CI: 30 s
#
# Settings (environment): REHEARSAL_DATABASE_URL (a PostgreSQL URL whose
# user may create databases; default TEST_DATABASE_URL, else
# postgres://postgres@127.0.0.1:5432/test), REHEARSAL_RATE (citizens per
# second), REHEARSAL_DURATION (seconds of arrivals), REHEARSAL_COST (bcrypt
# cost, default 12; 11 in the short run), REHEARSAL_PROFILE (release|debug),
# REHEARSAL_OUT (where logs are kept; default target/rehearsal).
# Needs: nginx (Debian's package), psql, cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=${REHEARSAL_PROFILE:-release}
if [ -n "${REHEARSAL_SHORT:-}" ]; then
  rate=${REHEARSAL_RATE:-5}
  duration=${REHEARSAL_DURATION:-30}
  cost=${REHEARSAL_COST:-11}
  think=${REHEARSAL_THINK_MS:-1000}
else
  rate=${REHEARSAL_RATE:-4}
  duration=${REHEARSAL_DURATION:-120}
  cost=${REHEARSAL_COST:-12}
  think=${REHEARSAL_THINK_MS:-3000}
fi
admin=${REHEARSAL_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}
out=${REHEARSAL_OUT:-$root/target/rehearsal}

. "$here/lib.sh"
build_portal rehearsal

rm -rf "$out"
mkdir -p "$out"
db="emeterai_rehearsal_$$"
base=${admin%%\?*}
url="${base%/*}/$db"
psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null

pids=()
nginx_pid=""
cleanup() {
  for pid in "${pids[@]}" $nginx_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

ports=("$(free_port)" "$(free_port)" "$(free_port)")
front=$(free_port)
mail_port=$(free_port)
secret=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
make_key_file

DATABASE_URL="$url" "$bin" migrate >"$out/migrate.log" 2>&1

for n in 0 1 2; do start_instance "$n" "${ports[$n]}"; done
for n in 0 1 2; do wait_ready "${ports[$n]}"; done

start_nginx "${ports[@]}"

echo "rehearsal: 3 instances (${ports[*]}) behind nginx on $front, PostgreSQL database $db"
capacity=$("$loadgen" --hash-rate "$cost")
echo "rehearsal: $rate citizens/s for $duration s, bcrypt cost $cost, 1 hashing thread per instance"
echo "rehearsal: one instance hashes $capacity passwords/s; the citizens ask for about $((rate * 2))/s (choosing the password and signing in)"
"$loadgen" --base "http://127.0.0.1:$front" --mail-port "$mail_port" --rate "$rate" \
  --duration "$duration" --think-ms "$think" --database-url "$url" --key-file "$out/keys.txt" --prefix "rh$$-" \
  >"$out/loadgen.log" 2>"$out/loadgen.err" &
load=$!

# Midway: one instance dies without warning, and comes back.
sleep $((duration / 2))
victim=1
echo "rehearsal: SIGKILL to the instance on ${ports[$victim]} at $(date +%T)"
kill -9 "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
sleep 5
start_instance "$victim" "${ports[$victim]}"
wait_ready "${ports[$victim]}"
echo "rehearsal: instance on ${ports[$victim]} started again at $(date +%T)"

status=0
wait "$load" || status=$?
cat "$out/loadgen.log"
echo
nginx_summary
echo "logs: $out"
if [ "$status" -ne 0 ]; then
  echo "rehearsal: FAILED (see $out/loadgen.err)" >&2
  tail -20 "$out/loadgen.err" >&2 || true
fi
exit "$status"
