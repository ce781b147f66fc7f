#!/usr/bin/env bash
# End-to-end tests of the demo page in a real Chromium:
#   builds bin/relay, starts `relay demo` on a free port with a fresh schema,
#   runs e2e/tests/*.test.js with node --test, saves screenshots and the
#   relay's log to artifacts/e2e/, and stops everything.
#
# Needs: Go, Node 20+, psql, PostgreSQL (TEST_DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) and Chromium
# (CHROMIUM_PATH, default /usr/bin/chromium: apt-get install -y chromium).
# E2E_KEEP_SCHEMA=1 keeps the schema afterwards for a look. Arguments pick test
# files (relative to e2e/), e.g. bash e2e/run.sh tests/03-progress.test.js
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_PATH" ]]; then
  echo "e2e: no Chromium at $CHROMIUM_PATH (Debian: apt-get install -y chromium, or set CHROMIUM_PATH)" >&2
  exit 1
fi
command -v psql >/dev/null || { echo "e2e: psql is needed (Debian: apt-get install -y postgresql-client)" >&2; exit 1; }

echo "e2e: building bin/relay"
go build -o bin/relay ./cmd/relay

echo "e2e: installing the test dependencies (npm ci)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export BELLHOP_SCHEMA="e2e_$(date +%s)_$$"
export BELLHOP_LOG_FORMAT=text
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
export E2E_ADDR="127.0.0.1:$port"
export E2E_BASE_URL="http://$E2E_ADDR"
export E2E_RELAY_BIN="$root/bin/relay"
export E2E_ARTIFACTS="$root/artifacts/e2e"
rm -rf "$E2E_ARTIFACTS"
mkdir -p "$E2E_ARTIFACTS"
export E2E_RELAY_LOG="$E2E_ARTIFACTS/relay.log"
work="$(mktemp -d)"
export E2E_RELAY_PIDFILE="$work/relay.pid"

cleanup() {
  local rc=$?
  if [[ -s "$E2E_RELAY_PIDFILE" ]]; then
    local pid
    pid="$(cat "$E2E_RELAY_PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [[ "${E2E_KEEP_SCHEMA:-}" != 1 ]]; then
    psql -X -q -d "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS $BELLHOP_SCHEMA CASCADE" >/dev/null 2>&1 || true
    # relay migrate made the schema's writer role, which is server-wide.
    psql -X -q -d "$DATABASE_URL" -c "DROP ROLE IF EXISTS ${BELLHOP_SCHEMA}_writer" >/dev/null 2>&1 || true
    # and its publication (migration 00010), the database's.
    psql -X -q -d "$DATABASE_URL" -c "DROP PUBLICATION IF EXISTS ${BELLHOP_SCHEMA}_wake" >/dev/null 2>&1 || true
  else
    echo "e2e: kept schema $BELLHOP_SCHEMA"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "e2e: starting relay demo on $E2E_ADDR, schema $BELLHOP_SCHEMA"
"$E2E_RELAY_BIN" demo --addr "$E2E_ADDR" --schema "$BELLHOP_SCHEMA" >>"$E2E_RELAY_LOG" 2>&1 &
echo $! >"$E2E_RELAY_PIDFILE"
disown
for i in $(seq 1 300); do
  if curl -fsS -o /dev/null "$E2E_BASE_URL/readyz" 2>/dev/null; then break; fi
  if ! kill -0 "$(cat "$E2E_RELAY_PIDFILE")" 2>/dev/null; then
    echo "e2e: relay demo exited; its log:" >&2
    cat "$E2E_RELAY_LOG" >&2
    exit 1
  fi
  if [[ $i == 300 ]]; then echo "e2e: relay demo not ready after 30 s" >&2; cat "$E2E_RELAY_LOG" >&2; exit 1; fi
  sleep 0.1
done

echo "e2e: running the tests"
set +e
(cd e2e && node --test --test-concurrency=1 --test-reporter=spec "${@:-tests/}")
rc=$?
set -e
echo "e2e: screenshots and relay.log in artifacts/e2e/"
ls "$E2E_ARTIFACTS"
exit "$rc"
