#!/usr/bin/env bash
# compose-smoke.sh brings up compose.yaml (built from this checkout) under a
# project name of its own and checks it end to end: migrate exited 0, the
# image's health check passes for serve and the demo, a row inserted in
# PostgreSQL moves the demo page's unread count and serve's, then tears it
# all down, volumes included. It needs a Docker engine with Compose v2 and
# curl; .ci/run calls it only when `docker info` answers.
#
# The stack publishes on the host's loopback: BELLHOP_PORT (8080),
# BELLHOP_DEMO_PORT (8081) and BELLHOP_PG_PORT (5433) move it.
set -euo pipefail
cd "$(dirname "$0")/.."

project="bellhop-smoke-$$"
compose() { docker compose -p "$project" -f compose.yaml "$@"; }
cleanup() {
  code=$?
  if [ "$code" -ne 0 ]; then
    compose ps -a >&2 || true
    compose logs --no-color --tail 50 >&2 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  rm -f "${jar:-}"
  exit "$code"
}
trap cleanup EXIT

relay_url="http://127.0.0.1:${BELLHOP_PORT:-8080}"
demo_url="http://127.0.0.1:${BELLHOP_DEMO_PORT:-8081}"

# Not --wait: it counts the one-shot migrate's exit as a failure
# (docker/compose#10596). The loops below wait instead.
compose up -d --build

# until SECONDS CMD...: CMD until it succeeds, at most SECONDS seconds.
until_ok() {
  local limit=$1 out
  shift
  for _ in $(seq $((limit * 2))); do
    if out="$("$@" 2>&1)"; then return 0; fi
    sleep 0.5
  done
  echo "compose-smoke: gave up after ${limit}s: $*: $out" >&2
  return 1
}

# The image has no shell: exec runs the binary itself.
until_ok 180 compose exec -T relay /relay healthcheck
until_ok 60 compose exec -T demo /relay healthcheck --url http://127.0.0.1:8081/healthz
migrate_exit="$(docker inspect -f '{{.State.ExitCode}}' "$(compose ps -aq migrate)")"
[ "$migrate_exit" = 0 ] || { echo "compose-smoke: migrate exited $migrate_exit" >&2; exit 1; }
version="$(compose exec -T relay /relay version)"
echo "compose-smoke: $version; serve and demo healthy"

# The demo page: its cookie, then a row for its user moves its badge.
jar="$(mktemp)"
curl -fsS -c "$jar" -o /dev/null "$demo_url/"
count() { curl -fsS "$@" | sed -n 's/.*"count":\([0-9]*\).*/\1/p'; }
before="$(count -b "$jar" "$demo_url/notifications/unread/count")"
compose exec -T postgres psql -U bellhop -d bellhop -v ON_ERROR_STOP=1 -qc \
  "INSERT INTO bellhop_demo.notifications (notifiable_id, type, data) VALUES ('demo', 'smoke', '{}')"
until_ok 30 test "$(count -b "$jar" "$demo_url/notifications/unread/count")" = "$((before + 1))"
echo "compose-smoke: the demo page's unread count went from $before to $((before + 1))"

# serve, with a token it signs.
token="$(compose exec -T relay /relay token --to smoke-42)"
compose exec -T postgres psql -U bellhop -d bellhop -v ON_ERROR_STOP=1 -qc \
  "INSERT INTO bellhop.notifications (notifiable_id, type, data) VALUES ('smoke-42', 'smoke', '{}')"
until_ok 30 test "$(count -H "Authorization: Bearer $token" "$relay_url/notifications/unread/count")" = 1
curl -fsS -o /dev/null "$relay_url/readyz"
echo "compose-smoke: serve answers the inbox and /readyz; ok"
