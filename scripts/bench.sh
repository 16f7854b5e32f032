#!/usr/bin/env bash
# make bench: the short performance profile behind docs/PERFORMANCE.md.
#
#  1. Go benchmarks of the hot paths (in process): the argon2id verify rate,
#     login vs that rate, refresh, client credentials, JWKS, access context
#     and effective licenses (p50/p99), the login storm.
#  2. Cross-instance propagation: two in-process instances sharing Postgres
#     and Valkey; a license or membership change on A until B answers it
#     (p50/p99/max, target ≤ 1 s).
#  3. cmd/identity-load against real identityd processes (loopback; the load
#     tool shares the machine's cores with the server): JWKS, access context
#     at 500 req/s, effective licenses, client credentials and mixed on
#     SQLite; refresh on PostgreSQL; 200 concurrent logins at production
#     argon2id cost on a fresh process whose peak RSS (VmHWM) is reported.
#
# Needs PostgreSQL at $IDENTITY_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) for the Postgres
# parts, and Valkey at $IDENTITY_TEST_VALKEY_URL (default
# redis://127.0.0.1:6379/0) for propagation. BENCH_SECONDS sets each load
# run's measured window (default 5); BENCH_PARTS selects parts (default
# "go propagation sqlite postgres storm").
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
SECS=${BENCH_SECONDS:-5}
PG_URL=${IDENTITY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

section() { printf '\n=== %s\n' "$*"; }
PARTS=" ${BENCH_PARTS:-go propagation sqlite postgres storm} "
part() { [[ $PARTS == *" $1 "* ]]; }

if part go; then
section "Go benchmarks (in process)"
$GO test -run '^$' -bench 'BenchmarkVerifyDefault$|BenchmarkParseBundled$' -benchtime 16x ./core/password
$GO test -run '^$' -bench 'BenchmarkLoginVsHashRate|BenchmarkRefresh|BenchmarkLoginStorm' -benchtime 2s ./core/auth
$GO test -run '^$' -bench 'BenchmarkClientCredentials' -benchtime 2s ./core/serviceaccount
$GO test -run '^$' -bench 'BenchmarkJWKSEndpoint|BenchmarkAccessContextHTTP|BenchmarkEffectiveLicensesHTTP' -benchtime 1s ./cmd/identityd
fi

if part propagation; then
section "Go benchmark: cross-instance propagation (two instances, Postgres + Valkey; target ≤ 1 s)"
# CI=true: an unreachable Postgres or Valkey fails the run instead of skipping it.
CI=true $GO test -run '^$' -bench 'BenchmarkCrossInstancePropagation' -benchtime 200x ./cmd/identityd
fi

section "build"
$GO build -o "$WORK/identityd" ./cmd/identityd
$GO build -o "$WORK/identity-load" ./cmd/identity-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_identityd NAME DATABASE_URL [extra env...]: starts a fresh instance,
# waits for /readyz and sets URL and PID.
start_identityd() {
  local name=$1 db=$2
  shift 2
  local port dir
  port=$(free_port)
  dir="$WORK/$name"
  mkdir -p "$dir"
  env IDENTITY_HTTP_ADDR="127.0.0.1:$port" IDENTITY_DATABASE_URL="$db" \
    IDENTITY_MASTER_KEY_FILE="$dir/master.key" IDENTITY_TRUSTED_PROXIES=127.0.0.1 \
    IDENTITY_BOOTSTRAP_ADMIN_EMAIL=bench-admin@example.org \
    IDENTITY_BOOTSTRAP_ADMIN_PASSWORD='bench admin correct horse staple' \
    IDENTITY_LOG_LEVEL=warn "$@" "$WORK/identityd" serve >"$dir/log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "identityd ($name) did not become ready:" >&2
  cat "$dir/log" >&2
  return 1
}

load() {
  "$WORK/identity-load" -url "$URL" -admin-email bench-admin@example.org \
    -admin-password 'bench admin correct horse staple' -duration "${SECS}s" -warmup 1s "$@"
}

if part sqlite; then
section "load tool: SQLite, fast argon2 for seeding"
start_identityd sqlite "sqlite://$WORK/sqlite.db" IDENTITY_ARGON2_PARAMS=m=64,t=1,p=1
load -scenario jwks -client raw -concurrency 32
load -scenario access-context -rate 500 -client raw
load -scenario effective-licenses
load -scenario client-credentials
load -scenario mixed -spoof-ips
kill "$PID"
fi

if part postgres; then
section "load tool: PostgreSQL, refresh"
db="bench_$(date +%s)_$$"
psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
trap 'cleanup; psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
pg_db_url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_URL" "$db")
start_identityd postgres "$pg_db_url" IDENTITY_ARGON2_PARAMS=m=64,t=1,p=1
load -scenario refresh -spoof-ips
kill "$PID"
fi

if part storm; then
section "load tool: 200 concurrent logins at production argon2id cost (fresh process)"
start_identityd storm "sqlite://$WORK/storm.db"
# 100 users: two workers per account, below the per-account limit of 10
# attempts in flight, so every refusal is the hashing capacity's 503.
load -scenario login -concurrency 200 -users 100 -spoof-ips
slots=$(nproc)
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
limit_mib=$((slots * 64 + 200))
echo "identityd peak RSS (VmHWM): $((hwm_kib / 1024)) MiB; target ≤ slots × 64 MiB + 200 MiB = $limit_mib MiB (slots = $slots)"
kill "$PID"
fi
