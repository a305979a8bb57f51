#!/usr/bin/env bash
# Runs every Fuzz target in the module for a short time each (default 5s).
set -euo pipefail
budget="${1:-5s}"
cd "$(dirname "$0")/.."
grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | while read -r dir; do
  for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); do
    echo "fuzz $dir $target ($budget)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$dir"
  done
done
