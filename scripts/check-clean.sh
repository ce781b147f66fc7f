#!/usr/bin/env bash
# check-clean.sh runs a command (`make test`, say) with a temp folder of its
# own and fails, naming what was left, if the command left anything behind:
# a file or directory in that temp folder (a relay binary's bellhop-bin-*,
# a relay-*.log, a throwaway cluster's bellhop-pg-*, ...) or a running
# process started from it (a PostgreSQL cluster, a relay). The command's own
# exit status wins when it fails.
#
#	scripts/check-clean.sh make test
#	scripts/check-clean.sh go test -count=1 ./relay/
set -uo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 command [args...]" >&2
  exit 2
fi

parent="${TMPDIR:-/tmp}"
tmp="$(mktemp -d "$parent/check-clean.XXXXXX")" || exit 2
# Like /tmp: a throwaway cluster runs as the postgres user when run as root.
chmod 1777 "$tmp"
TMPDIR="$tmp" "$@"
code=$?

# Give processes that were told to stop (pg_ctl stop -m fast, a relay's
# SIGTERM) a moment to exit.
leftover_procs() {
  # Any process whose command line names the temp folder: postgres -D,
  # a relay built into it, a log it writes.
  ps -eo pid=,args= | awk -v dir="$tmp" 'index($0, dir) && !/awk -v dir=/ { print }'
}
for _ in $(seq 50); do
  [ -z "$(leftover_procs)" ] && break
  sleep 0.1
done
procs="$(leftover_procs)"
files="$(cd "$tmp" && find . -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)"

status=0
if [ -n "$procs" ]; then
  echo "check-clean: '$*' left processes running (started from $tmp):" >&2
  echo "$procs" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$files" ]; then
  echo "check-clean: '$*' left files in its temp folder $tmp:" >&2
  while read -r f; do
    echo "  $f ($(du -sh "$tmp/$f" 2>/dev/null | cut -f1))" >&2
  done <<<"$files"
  status=1
fi
if [ "$status" -eq 0 ]; then
  rmdir "$tmp"
else
  echo "check-clean: left in place for inspection: $tmp" >&2
fi
if [ "$code" -ne 0 ]; then
  exit "$code"
fi
exit "$status"
