#!/usr/bin/env bash
# Stops the object store that hack/objectstore-up.sh started. Its data,
# certificates and credentials stay for the next `up`, unless --purge,
# which removes them all.
#
#   objectstore-down.sh [--purge]
set -euo pipefail

dir="${PGWARD_OBJECTSTORE_DIR:-$HOME/.cache/pgward/objectstore}"
purge=
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

pid="$(cat "$dir/versitygw.pid" 2>/dev/null || true)"
# Only a versitygw is stopped: after a reboot the pid may be another process's.
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = versitygw ]; then
  kill "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
  fi
  echo "object store stopped (pid $pid)"
else
  echo "object store not running"
fi
rm -f "$dir/versitygw.pid"

if [ -n "$purge" ]; then
  rm -rf "$dir"
  echo "removed $dir"
fi
