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

flag=()
[ "$profile" = release ] && flag=(--release)
echo "rehearsal: building ($profile)"
cargo build "${flag[@]}" --manifest-path "$root/Cargo.toml" --bin emeterai --example loadgen
bin="$root/target/$profile/emeterai"
loadgen="$root/target/$profile/examples/loadgen"

rm -rf "$out"
mkdir -p "$out/nginx/tmp" "$out/nginx/cache" "$out/nginx/html"
chmod -R a+rwX "$out"
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

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ports=("$(free_port)" "$(free_port)" "$(free_port)")
front=$(free_port)
mail_port=$(free_port)
secret=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
# One key file for every instance, as in production (README "Data at rest").
hex32() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
printf 'kek 1 %s\nindex %s\n' "$(hex32)" "$(hex32)" >"$out/keys.txt"
chmod 600 "$out/keys.txt"

DATABASE_URL="$url" "$bin" migrate >"$out/migrate.log" 2>&1

# One instance; the same settings for all, as from one settings file.
start_instance() {
  local n=$1
  DATABASE_URL="$url" \
  EMETERAI_BIND="127.0.0.1:${ports[$n]}" \
  EMETERAI_SECRET_KEY="$secret" \
  EMETERAI_BASE_URL="http://127.0.0.1:$front" \
  EMETERAI_DATA_DIR="$out/data$n" \
  EMETERAI_KEY_FILE="$out/keys.txt" \
  EMETERAI_MAIL_API_URL="http://127.0.0.1:$mail_port/send" \
  EMETERAI_MAIL_POLL_SECS=1 \
  EMETERAI_MAIL_RETRY_BASE_SECS=1 \
  EMETERAI_MAIL_RETRY_MAX_SECS=5 \
  EMETERAI_TRUST_PROXY=true \
  EMETERAI_KEEP_ALIVE_SECS=30 \
  EMETERAI_BCRYPT_COST="$cost" \
  EMETERAI_HASH_CONCURRENCY=1 \
  EMETERAI_DB_POOL_SIZE=8 \
  EMETERAI_SHUTDOWN_TIMEOUT_SECS=5 \
  EMETERAI_REGISTRATIONS_PER_IP_HOUR=1000000 \
  EMETERAI_RATE_LIMIT_PER_IP_HOUR=100000 \
  EMETERAI_SIGNIN_PER_IP_HOUR=1000000 \
  EMETERAI_LOG_FORMAT=text RUST_LOG=warn \
    "$bin" serve >>"$out/instance$n.log" 2>&1 &
  pids[$n]=$!
}
wait_ready() {
  local port=$1
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "rehearsal: instance on $port did not become ready" >&2
  return 1
}
for n in 0 1 2; do start_instance "$n"; done
for n in 0 1 2; do wait_ready "${ports[$n]}"; done

# nginx: the deployment's own file, pointed at this run's ports and paths.
sed -e "s|listen 80;|listen 127.0.0.1:$front;|" \
    -e "s|127.0.0.1:8081|127.0.0.1:${ports[0]}|" \
    -e "s|127.0.0.1:8082|127.0.0.1:${ports[1]}|" \
    -e "s|127.0.0.1:8083|127.0.0.1:${ports[2]}|" \
    -e "s|/var/lib/nginx/emeterai-static|$out/nginx/cache|" \
    -e "s|/usr/share/emeterai/nginx|$out/nginx/html|" \
    "$here/nginx/emeterai.conf" >"$out/nginx/emeterai.conf"
cp "$here/nginx/busy.html" "$out/nginx/html/"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$out/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $out/nginx/nginx.pid;
error_log $out/nginx/error.log warn;
events { worker_connections 4096; }
http {
  log_format upstream '\$status \$request_method \$uri \$upstream_addr \$upstream_status \$request_time';
  access_log $out/nginx/access.log upstream;
  client_body_temp_path $out/nginx/tmp/body;
  proxy_temp_path $out/nginx/tmp/proxy;
  fastcgi_temp_path $out/nginx/tmp/fastcgi;
  uwsgi_temp_path $out/nginx/tmp/uwsgi;
  scgi_temp_path $out/nginx/tmp/scgi;
  include $out/nginx/emeterai.conf;
}
EOF
nginx -t -p "$out/nginx" -c "$out/nginx/nginx.conf" 2>"$out/nginx/test.log" || { cat "$out/nginx/test.log" >&2; exit 1; }
nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
wait_ready "$front"

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
start_instance "$victim"
wait_ready "${ports[$victim]}"
echo "rehearsal: instance on ${ports[$victim]} started again at $(date +%T)"

status=0
wait "$load" || status=$?
cat "$out/loadgen.log"
echo
echo "nginx: requests per instance, and answers that were not 2xx/3xx/4xx:"
awk '{print $4}' "$out/nginx/access.log" | tr ',' '\n' | sed 's/ //g' | sort | uniq -c | sed 's/^/  /'
awk '$1 >= 500 {print $1, $2, $3, $4}' "$out/nginx/access.log" | sort | uniq -c | sed 's/^/  /' || true
echo "logs: $out"
if [ "$status" -ne 0 ]; then
  echo "rehearsal: FAILED (see $out/loadgen.err)" >&2
  tail -20 "$out/loadgen.err" >&2 || true
fi
exit "$status"
