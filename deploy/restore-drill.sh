#!/usr/bin/env bash
# Backup and restore drill for PostgreSQL: a cluster with WAL archiving,
# one portal instance under the load generator, a base backup taken while
# it serves (pg_basebackup), then a point in time T chosen while citizens
# still sign up. The base backup and the archived WAL are restored into a
# new cluster up to T (recovery_target_time), and checked: every
# registration committed before T (so every one acknowledged before T) is
# there, nothing committed after T is. A restore into a data directory that
# is not empty is refused. Prints the times; exits non-zero when a check
# fails. The SQLite drill (`emeterai backup` / `restore`) is in cargo test
# (tests/api/backup.rs).
#
#   deploy/restore-drill.sh                     # release build, 45 s of load
#   DRILL_SHORT=1 DRILL_PROFILE=debug deploy/restore-drill.sh   # CI: 24 s
#
# Needs: PostgreSQL 15 server binaries, curl, python3, cargo; run as root
# (the clusters run as the postgres user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=${DRILL_PROFILE:-release}
if [ -n "${DRILL_SHORT:-}" ]; then duration=24; cost=10; else duration=45; cost=12; fi
rate=${DRILL_RATE:-3}
out=${DRILL_OUT:-$root/target/restore-drill}
. "$here/lib.sh"
build_portal drill
rm -rf "$out"; mkdir -p "$out/archive"; chmod -R 777 "$out"
p1=$(free_port); p3=$(free_port); port=$(free_port); front=$port; mail_port=$(free_port)
secret=$(hex32); make_key_file
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for d in pg restored; do as_pg "$pgbin/pg_ctl" -D "$out/$d" -m immediate stop >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
sql() { psql -q -At -h 127.0.0.1 -p "$1" -U postgres -d "${3:-emeterai}" -c "$2"; }

init_cluster "$out/pg" "$p1"
cat >>"$out/pg/postgresql.conf" <<CONF
archive_mode = on
archive_command = 'test ! -f $out/archive/%f && cp %p $out/archive/%f'
archive_timeout = 5
CONF
as_pg "$pgbin/pg_ctl" -D "$out/pg" -l "$out/pg.log" -w start >/dev/null
sql "$p1" "CREATE DATABASE emeterai" postgres
url="postgres://postgres@127.0.0.1:$p1/emeterai"
DATABASE_URL="$url" "$bin" migrate >"$out/migrate.log" 2>&1
start_instance 0 "$port"; wait_ready "$port"
"$loadgen" --base "http://127.0.0.1:$port" --mail-port "$mail_port" --rate "$rate" \
  --duration "$duration" --think-ms 1000 --database-url "$url" --key-file "$out/keys.txt" --prefix "rd$$-" \
  >"$out/loadgen.log" 2>"$out/loadgen.err" &
load=$!

sleep $((duration / 3))
started=$(date +%s.%N)
as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$out/base" -X stream -c fast
echo "drill: base backup taken while serving in $(echo "$(date +%s.%N) - $started" | bc) s ($(du -sh "$out/base" | cut -f1))"
sleep $((duration / 3))
# Everything committed now, then T just after it.
sql "$p1" "SELECT nik FROM registrations UNION SELECT nik FROM accounts" | sort >"$out/before-T.txt"
T=$(sql "$p1" "SELECT clock_timestamp()")
echo "drill: T = $T; $(wc -l <"$out/before-T.txt") NIKs registered (waiting or verified) before it"

status=0
wait "$load" || status=$?
sql "$p1" "SELECT pg_switch_wal()" >/dev/null
sql "$p1" "SELECT nik FROM registrations UNION SELECT nik FROM accounts" | sort >"$out/end.txt"
wal=$(sql "$p1" "SELECT pg_walfile_name(pg_current_wal_lsn())")
for _ in $(seq 1 100); do
  last=$(sql "$p1" "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
  [[ "$last" > "$wal" || "$last" == "$wal" ]] && break; sleep 0.2
done
echo "drill: $(wc -l <"$out/end.txt") at the end of the load; WAL archived up to $last"

# restore_to DIR: the base backup and the archive into DIR, up to T.
restore_to() {
  local dir=$1
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "restore: $dir is not empty; a restore never writes over a data directory (move it aside first); nothing was changed" >&2
    return 2
  fi
  cp -a "$out/base" "$dir"
  cat >>"$dir/postgresql.auto.conf" <<CONF
port = $p3
archive_mode = off
restore_command = 'cp $out/archive/%f %p'
recovery_target_time = '$T'
recovery_target_action = 'promote'
CONF
  touch "$dir/recovery.signal"; chown -R postgres "$dir"
  as_pg "$pgbin/pg_ctl" -D "$dir" -l "$out/restored.log" -w start >/dev/null
}
refused=0
restore_to "$out/pg" 2>"$out/refused.txt" || refused=$?
echo "drill: restore into the live primary's directory: $(cat "$out/refused.txt")"
started=$(date +%s.%N)
restore_to "$out/restored"
for _ in $(seq 1 300); do [ "$(sql "$p3" "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.2; done
restored_in=$(echo "$(date +%s.%N) - $started" | bc)
sql "$p3" "SELECT nik FROM registrations UNION SELECT nik FROM accounts" | sort >"$out/restored.txt"
missing=$(comm -23 "$out/before-T.txt" "$out/restored.txt" | wc -l)
after=$(comm -13 "$out/before-T.txt" "$out/restored.txt" | wc -l)
# A verified registration is in both tables; within one, a NIK is at most once.
doubled=$(sql "$p3" "SELECT (SELECT count(nik) - count(DISTINCT nik) FROM registrations) + (SELECT count(nik) - count(DISTINCT nik) FROM accounts)")
echo "drill: restored to T in $restored_in s: $(wc -l <"$out/restored.txt") rows; missing $missing of those before T; $after committed after T; $doubled doubled"
cat "$out/loadgen.log" | tail -5
checks=(
  "every registration committed before T is restored:$([ "$missing" = 0 ] && echo 1 || echo 0)"
  "nothing doubled:$([ "$doubled" = 0 ] && echo 1 || echo 0)"
  "the restore stopped at T (fewer rows than at the end):$([ "$(wc -l <"$out/restored.txt")" -lt "$(wc -l <"$out/end.txt")" ] && echo 1 || echo 0)"
  "a restore into a non-empty directory is refused:$([ "$refused" = 2 ] && echo 1 || echo 0)"
)
for check in "${checks[@]}"; do
  if [ "${check##*:}" = 1 ]; then echo "  ok: ${check%:*}"; else echo "  FAILED: ${check%:*}"; status=1; fi
done
[ "$status" -eq 0 ] && echo "drill: passed" || echo "drill: FAILED (logs: $out)" >&2
exit "$status"
