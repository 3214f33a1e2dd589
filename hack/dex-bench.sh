#!/usr/bin/env bash
# dex-bench.sh runs Dex against a local PostgreSQL (and its memory
# storage) and measures the refresh_token grant with hack/loadoauth, for
# the side-by-side in docs/bench-dex.md. Dex is built from a checkout
# fetched beside the repository, with modules from the Go module proxy,
# into $DEX_BIN; none of Dex's code is kept here.
#
#   DEX_SRC=/work/dex-bin/src hack/dex-bench.sh [postgres memory]
#
# PostgreSQL comes from Debian's postgresql package (PG_BIN); postgres
# refuses root, so initdb and pg_ctl run as the postgres user, in a temp
# dir, on 127.0.0.1 and a free port. Everything is removed at exit.
set -euo pipefail

DEX_SRC=${DEX_SRC:-/work/dex-bin/src}
DEX_BIN=${DEX_BIN:-/work/dex-bin/dex}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WORKERS=${WORKERS:-16,64}
# SPREAD spreads the workers over that many users, each with its own
# OAuth client (0: every worker signs in as one user with one client).
# Dex keeps one offline session per user and one refresh token per user
# and client, so workers sharing them end or block each other's chains.
SPREAD=${SPREAD:-64}
MAX_CLIENTS=64
DEX_PG_CONNS=${DEX_PG_CONNS:-80}
DURATION=${DURATION:-15s}
STORAGES=("${@:-postgres memory}")
read -r -a STORAGES <<<"${STORAGES[*]}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ ! -x $DEX_BIN ]]; then
  (cd "$DEX_SRC" && go build -o "$DEX_BIN" ./cmd/dex)
fi
LOAD=$(mktemp -d)/loadoauth
(cd "$ROOT" && go build -o "$LOAD" ./hack/loadoauth)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/dexbench.XXXXXX)
chmod 755 "$WORK"
PG_PORT=$(free_port)
DEX_PID=
cleanup() {
  [[ -n $DEX_PID ]] && kill "$DEX_PID" 2>/dev/null && wait "$DEX_PID" 2>/dev/null || true
  if [[ -d $WORK/pg ]]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK" "$(dirname "$LOAD")"
}
trap cleanup EXIT

start_pg() {
  mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
  runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres dex
}

storage_config() {
  case $1 in
    # Dex's default pool (5 connections) deadlocks at 16 concurrent
    # refreshes of different users: each holds a transaction while it
    # waits for a second connection. DEX_PG_CONNS=0 keeps the default.
    postgres) printf 'storage:\n  type: postgres\n  config:\n    host: 127.0.0.1\n    port: %s\n    database: dex\n    user: postgres\n    ssl:\n      mode: disable\n' "$PG_PORT"
      if ((DEX_PG_CONNS > 0)); then printf '    maxOpenConns: %s\n    maxIdleConns: %s\n' "$DEX_PG_CONNS" "$DEX_PG_CONNS"; fi ;;
    memory) printf 'storage:\n  type: memory\n' ;;
    *) echo "unknown storage $1" >&2; exit 2 ;;
  esac
}

for st in "${STORAGES[@]}"; do
  [[ $st == postgres && ! -d $WORK/pg ]] && start_pg
  PORT=$(free_port)
  # The password is Dex's own example user ("password"), hashed as in its
  # config.dev.yaml.
  {
    echo "issuer: http://127.0.0.1:$PORT/dex"
    storage_config "$st"
    cat <<YAML
web:
  http: 127.0.0.1:$PORT
logger:
  level: warn
oauth2:
  passwordConnector: local
  skipApprovalScreen: true
staticClients:
YAML
    for i in $(seq 0 $((MAX_CLIENTS - 1))); do
      printf '  - id: bench-%s\n    secret: bench-secret\n    name: bench-%s\n    redirectURIs: [http://127.0.0.1/callback]\n' "$i" "$i"
    done
    printf '  - id: bench\n    secret: bench-secret\n    name: bench\n    redirectURIs: [http://127.0.0.1/callback]\n'
    cat <<YAML
enablePasswordDB: true
staticPasswords:
  - email: admin@example.com
    hash: "\$2a\$10\$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
    username: admin
    userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
YAML
    for i in $(seq 0 $((MAX_CLIENTS - 1))); do
      printf '  - email: bench%s@example.com\n    hash: "%s"\n    username: bench%s\n    userID: 00000000-0000-0000-0000-%012d\n' \
        "$i" '$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W' "$i" "$i"
    done
  } >"$WORK/dex-$st.yaml"
  "$DEX_BIN" serve "$WORK/dex-$st.yaml" >"$WORK/dex-$st.log" 2>&1 &
  DEX_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/dex/.well-known/openid-configuration" >/dev/null && break
    sleep 0.2
  done
  echo "== dex storage=$st ($(git -C "$DEX_SRC" rev-parse --short HEAD 2>/dev/null || echo "$DEX_SRC"))"
  "$LOAD" -token-url "http://127.0.0.1:$PORT/dex/token" -workers "$WORKERS" -duration "$DURATION" $(if ((SPREAD > 0)); then echo "-clients $SPREAD -users $SPREAD -username bench%d@example.com"; fi)
  echo "dex RSS after the runs: $(awk '/VmRSS|VmHWM/ {printf "%s %s %s  ", $1, $2, $3}' /proc/$DEX_PID/status)"
  echo "dex log errors: $(grep -ci error "$WORK/dex-$st.log" || true)"
  grep -i error "$WORK/dex-$st.log" | sed -E 's/time=[^ ]+ //' | sort | uniq -c | sort -rn | head -3 || true
  kill "$DEX_PID"; wait "$DEX_PID" 2>/dev/null || true; DEX_PID=
done
