#!/usr/bin/env bash
# check-static.sh builds the relay as the container image does
# (CGO_ENABLED=0, -trimpath), checks that it is statically linked (the
# image has no libc), runs `relay version`, and runs `relay healthcheck`
# against a live `relay serve` on TEST_DATABASE_URL: a throwaway schema,
# migrated, served on a free loopback port, then stopped and dropped with
# its writer role. CI runs it where no Docker engine can build the image.
#
#	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable scripts/check-static.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TEST_DATABASE_URL:?set TEST_DATABASE_URL to a PostgreSQL the check may create a schema in, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
for tool in psql file ldd python3; do
  command -v "$tool" >/dev/null || { echo "check-static: $tool is needed (psql drops the throwaway schema, file and ldd check the linking, python3 finds a free port)" >&2; exit 1; }
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bellhop-static.XXXXXX")"
schema="static_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
relay_pid=""
migrated=""
cleanup() {
  code=$?
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill -TERM "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  if [ -n "$migrated" ]; then
    psql "$TEST_DATABASE_URL" -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
      -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" \
      -c "DROP ROLE IF EXISTS \"${schema}_writer\"" \
      -c "DROP PUBLICATION IF EXISTS \"${schema}_wake\"" >/dev/null || code=1
  fi
  rm -rf "$tmp"
  exit "$code"
}
trap cleanup EXIT

bin="$tmp/relay"
version="static-check-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$bin" ./cmd/relay

# Statically linked: `file` says so, and ldd finds nothing to load.
info="$(file -b "$bin")"
case "$info" in
  *"statically linked"*) ;;
  *) echo "check-static: $bin is not statically linked: $info" >&2; exit 1 ;;
esac
if ldd_out="$(ldd "$bin" 2>&1)"; then
  echo "check-static: ldd lists dynamic dependencies for $bin:" >&2
  echo "$ldd_out" >&2
  exit 1
fi
case "$ldd_out" in
  *"not a dynamic executable"*) ;;
  *) echo "check-static: unexpected ldd output for $bin: $ldd_out" >&2; exit 1 ;;
esac
echo "check-static: statically linked ($info)"

out="$("$bin" version)"
[ "$out" = "bellhop relay $version" ] || { echo "check-static: relay version printed '$out', want 'bellhop relay $version'" >&2; exit 1; }
echo "check-static: $out"

# A free loopback port: the kernel picks one, which is then let go.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
export DATABASE_URL="$TEST_DATABASE_URL" BELLHOP_SCHEMA="$schema" \
  BELLHOP_LISTEN_ADDR="127.0.0.1:$port" BELLHOP_LOG_LEVEL=warn \
  BELLHOP_JWT_SECRET="static-check-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
unset BELLHOP_OPS_ADDR

migrated=1 # from here on, the schema and role may exist
"$bin" migrate >/dev/null

# Before serve: the health check fails, saying where it asked.
if msg="$("$bin" healthcheck 2>&1)"; then
  echo "check-static: relay healthcheck passed with no relay running: $msg" >&2
  exit 1
fi
echo "check-static: with no relay, healthcheck fails: $msg"

"$bin" serve 2>"$tmp/serve.log" &
relay_pid=$!
# The health check needs no DATABASE_URL: a container's may run without it.
healthy=""
for _ in $(seq 100); do
  if ! kill -0 "$relay_pid" 2>/dev/null; then
    echo "check-static: relay serve exited:" >&2
    cat "$tmp/serve.log" >&2
    exit 1
  fi
  if out="$(env -u DATABASE_URL "$bin" healthcheck 2>&1)"; then
    healthy=1
    break
  fi
  sleep 0.1
done
if [ -z "$healthy" ]; then
  echo "check-static: relay healthcheck never passed: $out" >&2
  cat "$tmp/serve.log" >&2
  exit 1
fi
echo "check-static: $out"

# A graceful stop exits 0.
kill -TERM "$relay_pid"
if ! wait "$relay_pid"; then
  echo "check-static: relay serve did not exit cleanly on SIGTERM:" >&2
  cat "$tmp/serve.log" >&2
  relay_pid=""
  exit 1
fi
relay_pid=""
echo "check-static: ok"
