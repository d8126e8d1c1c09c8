# Shared by the rehearsals (deploy/rehearse.sh, deploy/failover.sh,
# deploy/restore-drill.sh): the build, ports, keys, PostgreSQL clusters,
# portal instances and nginx on one machine. Source it after setting root
# and here; the functions read out, profile, cost, pgbin and (for
# instances) url, front, mail_port, secret when called.

# build_portal NAME: the portal and the load generator for $profile; sets
# bin and loadgen.
build_portal() {
  local flag=()
  [ "$profile" = release ] && flag=(--release)
  echo "$1: building ($profile)"
  cargo build "${flag[@]}" --manifest-path "$root/Cargo.toml" --bin emeterai --example loadgen
  bin="$root/target/$profile/emeterai"
  loadgen="$root/target/$profile/examples/loadgen"
}

# The newest PostgreSQL server binaries (PGBIN overrides), and a command run
# as the postgres user when this script runs as root.
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# init_cluster DIR PORT: a new cluster on loopback PORT with WAL for
# standbys and archives; the caller appends its own settings.
init_cluster() {
  as_pg "$pgbin/initdb" -D "$1" -U postgres --auth=trust >"$out/initdb-$(basename "$1").log"
  cat >>"$1/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$out'
wal_level = replica
CONF
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
hex32() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# One key file for every instance, as in production (README "Data at rest").
make_key_file() {
  printf 'kek 1 %s\nindex %s\n' "$(hex32)" "$(hex32)" >"$out/keys.txt"
  chmod 600 "$out/keys.txt"
}

# start_instance N PORT: one instance; the same settings for all, as from
# one settings file. Its pid goes to pids[N].
start_instance() {
  local n=$1 port=$2
  DATABASE_URL="$url" \
  EMETERAI_BIND="127.0.0.1:$port" \
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

# start_nginx PORT...: the deployment's own file, pointed at this run's
# instance ports (one upstream line each) and paths; its pid in nginx_pid.
start_nginx() {
  mkdir -p "$out/nginx/tmp" "$out/nginx/cache" "$out/nginx/html"
  local servers="" p
  for p in "$@"; do
    servers="$servers    server 127.0.0.1:$p max_fails=1 fail_timeout=10s;\n"
  done
  sed -e "s|listen 80;|listen 127.0.0.1:$front;|" \
      -e "/server 127.0.0.1:808[23] /d" \
      -e "s|    server 127.0.0.1:8081 .*|$servers|" \
      -e "s|/var/lib/nginx/emeterai-static|$out/nginx/cache|" \
      -e "s|/usr/share/emeterai/nginx|$out/nginx/html|" \
      "$here/nginx/emeterai.conf" >"$out/nginx/emeterai.conf"
  cp "$here/nginx/busy.html" "$out/nginx/html/"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$out/nginx/nginx.conf" <<CONF
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
CONF
  chmod -R a+rwX "$out/nginx"
  nginx -t -p "$out/nginx" -c "$out/nginx/nginx.conf" 2>"$out/nginx/test.log" || { cat "$out/nginx/test.log" >&2; return 1; }
  nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -g 'daemon off;' &
  nginx_pid=$!
  wait_ready "$front"
}

# What nginx saw: requests per instance, and the 5xx answers.
nginx_summary() {
  echo "nginx: requests per instance, and answers that were not 2xx/3xx/4xx:"
  awk '{print $4}' "$out/nginx/access.log" | tr ',' '\n' | sed 's/ //g' | sort | uniq -c | sed 's/^/  /'
  awk '$1 >= 500 {print $1, $2, $3, $4}' "$out/nginx/access.log" | sort | uniq -c | sed 's/^/  /' || true
}
