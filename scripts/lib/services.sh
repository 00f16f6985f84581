#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test. Reaches Postgres and Redis, or starts them:
#   1. DATABASE_URL / REDIS_URL when set and we can log in (a password in the URL, and for
#      Redis `rediss://` TLS, work; `#insecure` at the end skips certificate checks);
#   2. else the throwaway servers under .local/, once this checkout has made them (they are
#      kept and started again);
#   3. else the standard local ports (127.0.0.1:5432 as user postgres, 127.0.0.1:6379), if we
#      can log in there (a stock Debian PostgreSQL refuses password-less TCP logins);
#   4. else new throwaway servers under .local/ on free ports, installing the Debian packages
#      `postgresql` and `redis-server` with apt-get when their binaries are missing.
# Exports PG_ADMIN_URL (a URL to the server's `postgres` database) and REDIS_URL.
# scripts/stop stops the throwaway servers.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# tcp_open HOST PORT: true when something listens there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

free_port() {
  local p=$1
  while tcp_open 127.0.0.1 "$p"; do p=$((p + 1)); done
  echo "$p"
}

# host and port out of a URL like scheme://user@host:port/db
url_host() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; echo "${u%%:*}"; }
url_port() { local u=${1#*://}; u=${u#*@}; u=${u%%/*}; [[ $u == *:* ]] && echo "${u##*:}" || echo "$2"; }

redis_ping() {
  local host=$1 port=$2 reply
  # Braces: a bare `exec … 2>/dev/null` would silence the whole shell's stderr from then on.
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&-
  [[ $reply == +PONG* ]]
}

# redis_url_ok URL: we can log in to the Redis of URL and it answers PING (password, TLS and
# `#insecure` as the binaries read them).
redis_url_ok() {
  local url=$1 args=()
  command -v redis-cli >/dev/null || apt_install redis-tools
  [[ $url == rediss://* ]] && args+=(--tls)
  [[ $url == *"#insecure" ]] && args+=(--insecure)
  timeout 5 redis-cli "${args[@]}" -u "${url%%#*}" --no-auth-warning ping 2>/dev/null | grep -q PONG
}

# pg_login_ok URL: we can log in to the PostgreSQL of URL (not only reach its port).
pg_login_ok() {
  command -v psql >/dev/null || apt_install postgresql-client
  PGCONNECT_TIMEOUT=5 psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

apt_install() {
  if ! command -v apt-get >/dev/null; then die "$1 is missing and apt-get is not available: install $1"; fi
  log "installing $* (apt-get)"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed"
}

pg_bin() {
  local name=$1 found
  found=$(command -v "$name" 2>/dev/null || true)
  [ -z "$found" ] && found=$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -1)
  echo "$found"
}

start_local_postgres() {
  local initdb pg_ctl port data="$LOCAL/pg/data" as=()
  initdb=$(pg_bin initdb)
  if [ -z "$initdb" ]; then apt_install postgresql; initdb=$(pg_bin initdb); fi
  pg_ctl=$(pg_bin pg_ctl)
  [ -n "$initdb" ] && [ -n "$pg_ctl" ] || die "PostgreSQL binaries not found after install"
  # PostgreSQL refuses to run as root: run it as the `postgres` user the package creates.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
    as=(runuser -u postgres --)
    mkdir -p "$LOCAL/pg"; chown postgres "$LOCAL/pg"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initializing a throwaway PostgreSQL cluster in .local/pg"
    "${as[@]}" "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null || die "initdb failed"
  fi
  if [ -f "$LOCAL/pg/port" ] && tcp_open 127.0.0.1 "$(cat "$LOCAL/pg/port")"; then
    port=$(cat "$LOCAL/pg/port")
  else
    port=$(free_port 55432)
    "${as[@]}" "$pg_ctl" -D "$data" -l "$LOCAL/pg/log" -w -o "-p $port -k $LOCAL/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
      || die "PostgreSQL did not start (see .local/pg/log)"
    echo "$port" > "$LOCAL/pg/port"
  fi
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    if pg_login_ok "${DATABASE_URL%/*}/postgres"; then
      PG_ADMIN_URL="${DATABASE_URL%/*}/postgres"
      log "using PostgreSQL at $(url_host "$DATABASE_URL"):$(url_port "$DATABASE_URL" 5432) (DATABASE_URL)"
      return
    fi
    log "cannot log in with DATABASE_URL (down, or refusing us); using a local PostgreSQL instead"
  fi
  if [ -f "$LOCAL/pg/data/PG_VERSION" ]; then
    start_local_postgres
    log "using this checkout's throwaway PostgreSQL at ${PG_ADMIN_URL#*@}"
    return
  fi
  if tcp_open 127.0.0.1 5432; then
    if pg_login_ok "postgres://postgres@127.0.0.1:5432/postgres"; then
      PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
      log "using PostgreSQL at 127.0.0.1:5432"
      return
    fi
    log "PostgreSQL at 127.0.0.1:5432 refuses a password-less login as postgres; starting a throwaway one"
  fi
  start_local_postgres
  log "using throwaway PostgreSQL at ${PG_ADMIN_URL#*@}"
}

start_local_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$LOCAL/redis"
  local port
  if [ -f "$LOCAL/redis/port" ] && redis_ping 127.0.0.1 "$(cat "$LOCAL/redis/port")"; then
    port=$(cat "$LOCAL/redis/port")
  else
    # Same port as before when it is free, so URLs noted down stay valid.
    port=$(cat "$LOCAL/redis/port" 2>/dev/null || echo 56379)
    port=$(free_port "$port")
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$LOCAL/redis" --logfile "$LOCAL/redis/log" --pidfile "$LOCAL/redis/pid" >/dev/null || die "redis-server did not start"
    for _ in $(seq 50); do redis_ping 127.0.0.1 "$port" && break; sleep 0.1; done
    echo "$port" > "$LOCAL/redis/port"
  fi
  REDIS_URL="redis://127.0.0.1:$port"
}

ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then
    if redis_url_ok "$REDIS_URL"; then
      log "using Redis at $(url_host "$REDIS_URL"):$(url_port "$REDIS_URL" 6379) (REDIS_URL)"
      return
    fi
    log "cannot log in with REDIS_URL (down, or refusing us); using a local Redis instead"
  fi
  if [ -f "$LOCAL/redis/port" ]; then
    start_local_redis
    log "using this checkout's throwaway Redis at 127.0.0.1:${REDIS_URL##*:}"
    return
  fi
  if redis_ping 127.0.0.1 6379; then
    REDIS_URL="redis://127.0.0.1:6379"
    log "using Redis at 127.0.0.1:6379"
    return
  fi
  start_local_redis
  log "using throwaway Redis at 127.0.0.1:${REDIS_URL##*:}"
}

# ensure_redis_cluster: a throwaway three-master Redis Cluster under .local/redis-cluster
# (redis-server --cluster-enabled yes on three free ports, joined by redis-cli --cluster
# create; kept and started again like the other throwaway servers). Exports
# REDIS_CLUSTER_URL, one of its nodes; scripts/test runs the job system's end-to-end tests on
# it a second time. Client ports from 26101 and cluster-bus ports 100 above them: below
# Linux's ephemeral range, where outgoing connections could hold a port we want.
redis_cluster_ok() {
  timeout 5 redis-cli -p "$1" cluster info 2>/dev/null | grep -q 'cluster_state:ok'
}

# start_cluster_node DIR PORT: one node; restarted with its nodes.conf, it rejoins its cluster.
start_cluster_node() {
  local dir=$1 port=$2
  mkdir -p "$dir/$port"
  (cd "$dir/$port" && redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
    --cluster-enabled yes --cluster-port $((port + 100)) --cluster-config-file nodes.conf \
    --save "" --appendonly no --dir "$dir/$port" --logfile "$dir/$port/log" \
    --pidfile "$dir/$port/pid" >/dev/null) || die "redis-server (cluster node, port $port) did not start"
  for _ in $(seq 50); do redis_ping 127.0.0.1 "$port" && return; sleep 0.1; done
}

ensure_redis_cluster() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  local dir="$LOCAL/redis-cluster" ports=() p port
  mkdir -p "$dir"
  if [ -f "$dir/ports" ]; then
    read -r -a ports < "$dir/ports"
    for port in "${ports[@]}"; do
      redis_ping 127.0.0.1 "$port" || start_cluster_node "$dir" "$port"
    done
    for _ in $(seq 100); do redis_cluster_ok "${ports[0]}" && break; sleep 0.1; done
  fi
  if [ ${#ports[@]} -ne 3 ] || ! redis_cluster_ok "${ports[0]}"; then
    [ -f "$dir/ports" ] && log "the throwaway Redis Cluster did not come back; making a new one"
    for port in "${ports[@]}"; do
      [ -f "$dir/$port/pid" ] && kill "$(cat "$dir/$port/pid")" 2>/dev/null || true
    done
    rm -rf "$dir"; mkdir -p "$dir"
    ports=(); p=26101
    for _ in 1 2 3; do
      while tcp_open 127.0.0.1 "$p" || tcp_open 127.0.0.1 $((p + 100)); do p=$((p + 1)); done
      start_cluster_node "$dir" "$p"
      ports+=("$p"); p=$((p + 1))
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
      > "$dir/create.log" 2>&1 || die "redis-cli --cluster create failed (see $dir/create.log)"
    for _ in $(seq 100); do redis_cluster_ok "${ports[0]}" && break; sleep 0.1; done
    redis_cluster_ok "${ports[0]}" || die "the Redis Cluster on ports ${ports[*]} is not ok"
    echo "${ports[*]}" > "$dir/ports"
  fi
  REDIS_CLUSTER_URL="redis://127.0.0.1:${ports[0]}"
  export REDIS_CLUSTER_URL
  log "using the throwaway Redis Cluster at 127.0.0.1, ports ${ports[*]}"
}

# ensure_pgbouncer: a throwaway PgBouncer (Debian's package: 1.18, no protocol-level
# prepared statements) in transaction mode in front of PG_ADMIN_URL's server, under
# .local/pgbouncer; every database of that server is reachable through it by name. Exports
# PGBOUNCER_URL (its `postgres` database); scripts/test runs the purchase, renewal and
# dashboard tests through it a second time. Port from 26432 (below the ephemeral range).
ensure_pgbouncer() {
  local bin dir="$LOCAL/pgbouncer" port rest user password host pgport as=()
  bin=$(command -v pgbouncer 2>/dev/null || ls /usr/sbin/pgbouncer 2>/dev/null || true)
  if [ -z "$bin" ]; then apt_install pgbouncer; bin=$(command -v pgbouncer || ls /usr/sbin/pgbouncer); fi
  [ -x "$bin" ] || die "pgbouncer not found after installing"
  mkdir -p "$dir"
  if [ -f "$dir/port" ] && [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
  else
    rest=${PG_ADMIN_URL#*://}; user=${rest%%@*}; password=""
    [[ $user == *:* ]] && { password=${user#*:}; user=${user%%:*}; }
    host=$(url_host "$PG_ADMIN_URL"); pgport=$(url_port "$PG_ADMIN_URL" 5432)
    port=$(free_port "$(cat "$dir/port" 2>/dev/null || echo 26432)")
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$pgport user=$user${password:+ password=$password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
max_db_connections = 80
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
logfile = $dir/log
pidfile = $dir/pid
INI
    printf '"%s" ""\n' "$user" > "$dir/userlist.txt"
    # PgBouncer refuses to run as root: as the `postgres` user, like the throwaway PostgreSQL.
    if [ "$(id -u)" -eq 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
      chown -R postgres "$dir"; as=(runuser -u postgres --)
    fi
    rm -f "$dir/pid"
    "${as[@]}" "$bin" -d "$dir/pgbouncer.ini" >/dev/null 2>&1 || die "pgbouncer did not start (see $dir/log)"
    for _ in $(seq 50); do tcp_open 127.0.0.1 "$port" && break; sleep 0.1; done
    tcp_open 127.0.0.1 "$port" || die "pgbouncer does not listen on $port (see $dir/log)"
    echo "$port" > "$dir/port"
  fi
  PGBOUNCER_URL="postgres://${PG_ADMIN_URL#*://}"
  PGBOUNCER_URL="${PGBOUNCER_URL%%@*}@127.0.0.1:$port/postgres"
  export PGBOUNCER_URL
  log "using the throwaway PgBouncer (transaction mode) at 127.0.0.1:$port"
}

# pg_socket_url: PG_ADMIN_URL through the server's Unix socket, when the server is on this
# machine (127.0.0.1 or localhost) and its socket is found; fails otherwise. The benchmark
# scripts use it: on one machine a Unix socket spares both ends the loopback TCP path.
pg_socket_url() {
  local host port user dir
  host=$(url_host "$PG_ADMIN_URL"); port=$(url_port "$PG_ADMIN_URL" 5432)
  [[ $host == 127.0.0.1 || $host == localhost ]] || return 1
  user=${PG_ADMIN_URL#*://}; user=${user%%@*}
  for dir in /var/run/postgresql /run/postgresql /tmp "$LOCAL/pg"; do
    if [ -S "$dir/.s.PGSQL.$port" ]; then
      echo "postgres://$user@${dir//\//%2F}:$port/postgres"
      return 0
    fi
  done
  return 1
}

# bench_pg_socket: the benchmark scripts reach a Postgres on this machine through its Unix
# socket (BENCH_PG_TCP=1 keeps loopback TCP).
bench_pg_socket() {
  local socket_url
  if [[ -z ${BENCH_PG_TCP:-} ]] && socket_url=$(pg_socket_url); then
    PG_ADMIN_URL=$socket_url
    log "benchmark connects to PostgreSQL through its Unix socket ($socket_url)"
  fi
}

ensure_services() {
  ensure_postgres
  ensure_redis
  export PG_ADMIN_URL REDIS_URL
}

# The diesel CLI version that generates domain/src/db/schema.rs (diesel.toml).
DIESEL_CLI_VERSION=2.3.14

# ensure_diesel_cli: `diesel` on PATH at DIESEL_CLI_VERSION, installed once into cargo's bin
# folder when missing (libpq is built from source: no system package needed; a few minutes).
ensure_diesel_cli() {
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  if diesel --version 2>/dev/null | grep -q "Version: $DIESEL_CLI_VERSION"; then return; fi
  log "installing diesel_cli $DIESEL_CLI_VERSION (once; a few minutes)"
  cargo install diesel_cli --version "$DIESEL_CLI_VERSION" --locked --quiet \
    --no-default-features --features postgres-bundled || die "cargo install diesel_cli failed"
}

# ensure_pg_dump: PostgreSQL's client tools (pg_dump, psql) on PATH: the migration test
# compares schema dumps, scripts/schema makes its scratch database.
# ensure_test_tools: what the fault tests start on their own (a private redis-server, a private
# PostgreSQL cluster) and the browser the ops page test drives. Installed when missing; a test
# never skips for want of them.
ensure_test_tools() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  command -v openssl >/dev/null || apt_install openssl
  [ -n "$(pg_bin initdb)" ] && [ -n "$(pg_bin pg_ctl)" ] || apt_install postgresql
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_install chromium
  command -v redis-server >/dev/null && command -v openssl >/dev/null && [ -n "$(pg_bin initdb)" ] \
    && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } \
    || die "redis-server, openssl, PostgreSQL server binaries or chromium still missing after installing"
}

# ensure_typescript_client: Node.js and npm (Debian's packages when missing), then the typed
# client's packages (`npm ci`, again whenever package-lock.json changed), a check that the
# generated code matches schema.graphql and the documents (GraphQL Code Generator's --check:
# stale output fails the run; `npm run generate` in clients/typescript regenerates it),
# `tsc --noEmit`, and the build the journey test runs (clients/typescript/dist).
ensure_typescript_client() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  command -v node >/dev/null && command -v npm >/dev/null || die "node and npm still missing after installing"
  local dir="$ROOT/clients/typescript"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing the typed client's packages (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in clients/typescript"
  fi
  local out
  out=$(cd "$dir" && npx --no-install graphql-codegen --config codegen.ts --check 2>&1) \
    || { printf '%s\n' "$out" | grep -v '^\(✔\|❯\)' >&2; die "clients/typescript/src/gql is stale against schema.graphql or the documents: run \`npm run generate\` in clients/typescript and commit the result"; }
  (cd "$dir" && npx --no-install tsc --noEmit) || die "clients/typescript does not type-check (tsc --noEmit)"
  (cd "$dir" && rm -rf dist && npx --no-install tsc) || die "clients/typescript does not build"
}

# The Stripe-compatible server the Stripe tests run against: localstripe (a fake but stateful
# Stripe server, from PyPI) in a virtual environment under .local/localstripe, started once on
# a free port and kept running like the throwaway Redis. Exports STRIPE_TEST_API_BASE.
LOCALSTRIPE_VERSION=1.15.10
ensure_localstripe() {
  local dir="$LOCAL/localstripe" port
  if [ -f "$dir/port" ] && tcp_open 127.0.0.1 "$(cat "$dir/port")"; then
    port=$(cat "$dir/port")
  else
    mkdir -p "$dir"
    if ! "$dir/venv/bin/pip" show localstripe 2>/dev/null | grep -q "^Version: $LOCALSTRIPE_VERSION$"; then
      command -v python3 >/dev/null || apt_install python3
      python3 -m venv "$dir/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$dir/venv"; } \
        || die "could not make a Python virtual environment for localstripe"
      log "installing localstripe $LOCALSTRIPE_VERSION (PyPI) into .local/localstripe"
      "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "localstripe==$LOCALSTRIPE_VERSION" \
        || die "pip install localstripe failed"
    fi
    # Below Linux's ephemeral range (32768–60999): a port there can be held by a client
    # socket or a TIME_WAIT at the moment localstripe binds it (seen once: "Address already
    # in use"). And a few tries, each on the next free port, should it happen anyway.
    port=27420
    local pid tries=0
    while :; do
      port=$(free_port "$port")
      nohup "$dir/venv/bin/localstripe" --port "$port" >"$dir/log" 2>&1 &
      pid=$!
      for _ in $(seq 150); do
        tcp_open 127.0.0.1 "$port" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      tcp_open 127.0.0.1 "$port" && break
      kill "$pid" 2>/dev/null || true
      tries=$((tries + 1))
      [ "$tries" -lt 5 ] || die "localstripe did not start (see .local/localstripe/log)"
      port=$((port + 1))
    done
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
  fi
  export STRIPE_TEST_API_BASE="http://127.0.0.1:$port"
  log "using localstripe at $STRIPE_TEST_API_BASE"
}

ensure_pg_dump() {
  local found
  found=$(pg_bin pg_dump)
  if [ -z "$found" ]; then apt_install postgresql-client; found=$(pg_bin pg_dump); fi
  [ -n "$found" ] || die "pg_dump not found after installing postgresql-client"
  export PATH="$(dirname "$found"):$PATH"
}
