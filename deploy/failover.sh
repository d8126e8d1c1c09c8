#!/usr/bin/env bash
# Failover rehearsal on one machine: a PostgreSQL 15 primary and a
# synchronous streaming standby (plain replication, promoted with
# `pg_ctl promote`), two portal instances with a multi-host DATABASE_URL
# behind the nginx of deploy/, and the load generator at a steady rate.
# Midway the primary is killed with SIGKILL (FAILOVER_FAULT=silence: its
# port is dropped by iptables instead, a partition), and after a detection
# delay the standby is promoted. Printed and checked: every registration
# acknowledged before, during and after is on the new primary exactly
# once, no mail lost or sent twice (the load generator), how long after
# the promotion both instances served again without a restart, what the
# status page said meanwhile, and that the old primary came back as the
# new primary's standby (pg_rewind). Exits non-zero when a check fails.
#
#   deploy/failover.sh                  # release build, 60 s at 3 citizens/s
#   FAILOVER_SHORT=1 FAILOVER_PROFILE=debug deploy/failover.sh   # CI: 30 s
#
# Settings (environment): FAILOVER_RATE, FAILOVER_DURATION (seconds of
# arrivals), FAILOVER_DETECT_SECS (fault to promotion, as a failover
# manager takes to decide; default 8),
# FAILOVER_FAULT (kill|silence), FAILOVER_TARGET_SECS (15: the most the
# instances may take to serve again after the promotion), FAILOVER_PROFILE
# (release|debug), FAILOVER_OUT (logs; default target/failover).
# Needs: PostgreSQL 15 server binaries (Debian postgresql-15), nginx, curl,
# python3, cargo; run as root (the clusters run as the postgres user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=${FAILOVER_PROFILE:-release}
if [ -n "${FAILOVER_SHORT:-}" ]; then
  rate=${FAILOVER_RATE:-3}; duration=${FAILOVER_DURATION:-30}; cost=10; think=1000
else
  rate=${FAILOVER_RATE:-3}; duration=${FAILOVER_DURATION:-60}; cost=12; think=2000
fi
detect=${FAILOVER_DETECT_SECS:-8}
fault=${FAILOVER_FAULT:-kill}
target=${FAILOVER_TARGET_SECS:-15}
out=${FAILOVER_OUT:-$root/target/failover}

. "$here/lib.sh"
build_portal failover
rm -rf "$out"
mkdir -p "$out"
chmod 777 "$out"
p1=$(free_port); p2=$(free_port)
ports=("$(free_port)" "$(free_port)")
front=$(free_port); mail_port=$(free_port)
secret=$(hex32)
make_key_file
pids=(); nginx_pid=""; dropped=""
cleanup() {
  for pid in "${pids[@]}" $nginx_pid; do kill "$pid" 2>/dev/null || true; done
  [ -n "$dropped" ] && { iptables -D INPUT -p tcp --dport "$p1" -j DROP 2>/dev/null || true; iptables -D INPUT -p tcp --sport "$p1" -j DROP 2>/dev/null || true; }
  for d in pg1 pg2; do as_pg "$pgbin/pg_ctl" -D "$out/$d" -m immediate stop >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The primary: WAL for a standby, hints for pg_rewind, commits waiting for
# the standby (synchronous replication: nothing acknowledged is only here).
init_cluster "$out/pg1" "$p1"
cat >>"$out/pg1/postgresql.conf" <<CONF
max_wal_senders = 5
wal_log_hints = on
wal_keep_size = '512MB'
hot_standby = on
synchronous_standby_names = '*'
CONF
as_pg "$pgbin/pg_ctl" -D "$out/pg1" -l "$out/pg1.log" -w start >/dev/null
as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$out/pg2" -R -X stream
echo "port = $p2" >>"$out/pg2/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$out/pg2" -l "$out/pg2.log" -w start >/dev/null
sql() { psql -q -At -h 127.0.0.1 -p "$1" -U postgres -d "${3:-postgres}" -c "$2"; }
for _ in $(seq 1 50); do [ "$(sql "$p1" "SELECT sync_state FROM pg_stat_replication")" = sync ] && break; sleep 0.2; done
echo "failover: primary on $p1, synchronous standby on $p2 ($(sql "$p1" "SELECT sync_state FROM pg_stat_replication"))"
sql "$p1" "CREATE DATABASE emeterai"
url="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/emeterai"
DATABASE_URL="$url" "$bin" migrate >"$out/migrate.log" 2>&1
for n in 0 1; do start_instance "$n" "${ports[$n]}"; done
for n in 0 1; do wait_ready "${ports[$n]}"; done
start_nginx "${ports[@]}"
echo "failover: 2 instances (${ports[*]}) behind nginx on $front; DATABASE_URL=$url"
"$loadgen" --base "http://127.0.0.1:$front" --mail-port "$mail_port" --rate "$rate" \
  --duration "$duration" --think-ms "$think" --database-url "$url" --key-file "$out/keys.txt" --prefix "fo$$-" \
  >"$out/loadgen.log" 2>"$out/loadgen.err" &
load=$!

# What the status page says, every second, from the kill until both
# instances serve again.
watch_status() {
  while :; do
    printf '%s %s\n' "$(date +%s.%N)" "$(curl -s "http://127.0.0.1:$front/status?lang=en" | grep -o 'level-[a-z]*' | tr '\n' ' ')"
    sleep 1
  done >"$out/status.log"
}

sleep $((duration / 2))
pm=$(head -1 "$out/pg1/postmaster.pid")
t_fault=$(date +%s.%N)
if [ "$fault" = silence ]; then
  echo "failover: the primary goes silent (iptables DROP on port $p1) at $(date +%T)"
  iptables -I INPUT -p tcp --dport "$p1" -j DROP
  iptables -I INPUT -p tcp --sport "$p1" -j DROP
  dropped=1
else
  echo "failover: SIGKILL to the primary (postmaster $pm and its processes) at $(date +%T)"
  kill -9 "$pm" $(pgrep -P "$pm") 2>/dev/null || true
fi
watch_status &
watcher=$!
sleep "$detect"
as_pg "$pgbin/pg_ctl" -D "$out/pg2" -w promote >/dev/null
t_promoted=$(date +%s.%N)
# No standby yet: commits must not wait for one.
sql "$p2" "ALTER SYSTEM SET synchronous_standby_names = ''"
sql "$p2" "SELECT pg_reload_conf()" >/dev/null
echo "failover: standby on $p2 promoted at $(date +%T) ($(echo "$t_promoted - $t_fault" | bc) s after the fault)"
serving=()
for n in 0 1; do
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:${ports[$n]}/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  serving[$n]=$(echo "$(date +%s.%N) - $t_promoted" | bc)
done
sleep 1
kill "$watcher" 2>/dev/null || true
slowest=$(printf '%s\n' "${serving[@]}" | sort -g | tail -1)
echo "failover: instances ready again ${serving[0]} s and ${serving[1]} s after the promotion (no restart)"

# The old primary comes back as the standby of the new one.
if [ -n "$dropped" ]; then
  as_pg "$pgbin/pg_ctl" -D "$out/pg1" -m immediate stop >/dev/null 2>&1 || true
  iptables -D INPUT -p tcp --dport "$p1" -j DROP; iptables -D INPUT -p tcp --sport "$p1" -j DROP; dropped=""
fi
# The new timeline must be in the new primary's control file first.
sql "$p2" "CHECKPOINT"
rm -f "$out/pg1/postmaster.pid"
# Crash recovery without listening (single-user), so pg_rewind finds it shut down cleanly.
echo "" | as_pg "$pgbin/postgres" --single -D "$out/pg1" -c "port=$p1" postgres >"$out/pg1-single.log" 2>&1 || true
if as_pg "$pgbin/pg_rewind" --target-pgdata="$out/pg1" --source-server="host=127.0.0.1 port=$p2 user=postgres dbname=postgres" >"$out/rewind.log" 2>&1; then
  echo "failover: old primary rewound to the new timeline (pg_rewind)"
else
  # The WAL it needs is gone: a fresh copy of the new primary instead.
  echo "failover: pg_rewind could not ($(tail -1 "$out/rewind.log")); copying the new primary instead"
  rm -rf "$out/pg1"
  as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$p2" -U postgres -D "$out/pg1" -X stream
fi
# Both copied the new primary's settings, its port among them.
echo "port = $p1" >>"$out/pg1/postgresql.conf"
touch "$out/pg1/standby.signal"; chown postgres "$out/pg1/standby.signal"
echo "primary_conninfo = 'host=127.0.0.1 port=$p2 user=postgres application_name=pg1'" >>"$out/pg1/postgresql.auto.conf"
as_pg "$pgbin/pg_ctl" -D "$out/pg1" -l "$out/pg1.log" -w start >/dev/null
back=""
for _ in $(seq 1 100); do
  back=$(sql "$p2" "SELECT state FROM pg_stat_replication WHERE application_name = 'pg1'")
  [ "$back" = streaming ] && break; sleep 0.2
done
sql "$p2" "ALTER SYSTEM SET synchronous_standby_names = '*'"
sql "$p2" "SELECT pg_reload_conf()" >/dev/null
echo "failover: old primary on $p1 is the new primary's standby: ${back:-no}"

status=0
wait "$load" || status=$?
cat "$out/loadgen.log"
echo
nginx_summary
down=$(grep -c 'level-down' "$out/status.log" || true)
echo "status page: $(wc -l <"$out/status.log") readings from the fault until both served, $down of them said 'down'"
checks=(
  "instances served again within $target s of the promotion ($slowest s):$(echo "$slowest <= $target" | bc)"
  "the old primary streams from the new one:$([ "$back" = streaming ] && echo 1 || echo 0)"
  "the status page said 'down' during the outage:$([ "$down" -gt 0 ] && echo 1 || echo 0)"
  "the new primary is $p2 (not in recovery):$([ "$(sql "$p2" "SELECT pg_is_in_recovery()")" = f ] && echo 1 || echo 0)"
)
for check in "${checks[@]}"; do
  if [ "${check##*:}" = 1 ]; then echo "  ok: ${check%:*}"; else echo "  FAILED: ${check%:*}"; status=1; fi
done
echo "logs: $out"
[ "$status" -eq 0 ] && echo "failover: passed" || echo "failover: FAILED (see $out/loadgen.err)" >&2
exit "$status"
