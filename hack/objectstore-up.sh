#!/usr/bin/env bash
# Starts a local S3-compatible object store for trying backups: versitygw
# (pinned in hack/tools/versitygw) on loopback, over TLS with a private CA,
# with random credentials and one bucket, "pgward". Its state lives outside
# the repository, in $PGWARD_OBJECTSTORE_DIR (default
# ~/.cache/pgward/objectstore):
#
#   ca.crt, ca.key (0600)          the private CA (EC P-256)
#   server.crt, server.key (0600)  for DNS:localhost and IP:127.0.0.1
#   credentials (0600)             the access key id and secret
#   secret.yaml (0600)             the same as a Kubernetes Secret, with ca.crt
#   root/pgward/                   the bucket: objects are plain files there
#   port, versitygw.pid, versitygw.log
#
# Running it again while the store runs reuses it. hack/objectstore-down.sh
# stops it. The last two lines printed are the exports for the shell:
#
#   eval "$(hack/objectstore-up.sh | tail -n 2)"
#
# PGWARD_OBJECTSTORE_PORT picks the port (default 9000, or the next free
# one); PGWARD_VERSITYGW names a versitygw binary to use instead of building
# the pinned one.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${PGWARD_OBJECTSTORE_DIR:-$HOME/.cache/pgward/objectstore}"
bucket=pgward
umask 077 # keys, credentials and the secret are born 0600

die() { echo "objectstore-up: $*" >&2; exit 1; }

# answers PORT succeeds when a TLS server that the CA vouches for as
# localhost answers on PORT.
answers() {
  openssl s_client -connect "127.0.0.1:$1" -servername localhost -verify_hostname localhost \
    -CAfile "$dir/ca.crt" -verify_return_error </dev/null >/dev/null 2>&1
}

# listening PORT succeeds when something accepts connections on PORT.
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# alive PID succeeds while PID runs (a zombie, dead but not yet reaped,
# does not count).
alive() {
  local state
  state="$(awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null)"
  [ -n "$state" ] && [ "$state" != Z ]
}

# running succeeds when versitygw.pid names a live versitygw.
running() {
  local pid
  pid="$(cat "$dir/versitygw.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = versitygw ]
}

report() {
  echo "object store: versitygw on https://localhost:$port, bucket $bucket, data in $dir/root/$bucket"
  echo "export PGWARD_S3_ENDPOINT=https://localhost:$port"
  echo "export PGWARD_S3_SECRET_FILE=$dir/secret.yaml"
}

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)" # versitygw needs absolute paths for --cert/--key
# 0711: others may reach ca.crt by name (pgBackRest reads its CA as the
# postgres user) but list nothing.
chmod 0711 "$dir"

if running; then
  port="$(cat "$dir/port")"
  answers "$port" || die "versitygw (pid $(cat "$dir/versitygw.pid")) runs but does not answer on" \
    "port $port; stop it with hack/objectstore-down.sh"
  echo "object store already running (pid $(cat "$dir/versitygw.pid"))"
  report
  exit 0
fi

bin="${PGWARD_VERSITYGW:-}"
if [ -z "$bin" ]; then
  bin="$("$repo/hack/tools.sh" versitygw)/versitygw"
fi
[ -x "$bin" ] || die "no versitygw binary at $bin"

# The CA and the server certificate, once. pgBackRest 2.45 checks the
# endpoint's host name against DNS names only, hence DNS:localhost as well
# as the IP.
if [ ! -s "$dir/server.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj /CN=pgward-objectstore-ca -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
  chmod 0644 "$dir/ca.crt" "$dir/server.crt"
fi

# The credentials, once; hex so that they need no quoting anywhere.
if [ ! -s "$dir/credentials" ]; then
  printf 'ROOT_ACCESS_KEY_ID=%s\nROOT_SECRET_ACCESS_KEY=%s\n' \
    "$(openssl rand -hex 10)" "$(openssl rand -hex 20)" >"$dir/credentials.tmp"
  mv "$dir/credentials.tmp" "$dir/credentials"
fi
# shellcheck disable=SC1091
. "$dir/credentials"

# The Secret for a pgward manifest, rewritten each time from the files above.
{
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: objectstore\nstringData:\n'
  printf '  ACCESS_KEY_ID: "%s"\n  ACCESS_SECRET_KEY: "%s"\n  ca.crt: |\n' "$ROOT_ACCESS_KEY_ID" "$ROOT_SECRET_ACCESS_KEY"
  sed 's/^/    /' "$dir/ca.crt"
} >"$dir/secret.yaml.tmp"
mv "$dir/secret.yaml.tmp" "$dir/secret.yaml"

# The posix root: a directory in it is a bucket. 0700: objects are read
# through S3, or by their owner (the tests run as root).
mkdir -p "$dir/root/$bucket"
chmod 0700 "$dir/root"

if [ -n "${PGWARD_OBJECTSTORE_PORT:-}" ]; then
  port="$PGWARD_OBJECTSTORE_PORT"
  ! listening "$port" || die "port $port (PGWARD_OBJECTSTORE_PORT) is taken"
else
  port=9000
  while listening "$port"; do
    port=$((port + 1))
    [ "$port" -lt 9100 ] || die "no free port in 9000-9099; set PGWARD_OBJECTSTORE_PORT"
  done
fi

# The credentials go to versitygw through its environment only: a command
# line is readable by every user in /proc. setsid detaches it from this
# shell's terminal; with no job control here it execs in place, so $! is
# versitygw's pid.
(
  export ROOT_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY
  exec setsid "$bin" --port "127.0.0.1:$port" --cert "$dir/server.crt" --key "$dir/server.key" \
    --quiet posix "$dir/root" >"$dir/versitygw.log" 2>&1 </dev/null
) &
pid=$!
echo "$pid" >"$dir/versitygw.pid"
echo "$port" >"$dir/port"

for _ in $(seq 100); do
  if ! alive "$pid"; then
    rm -f "$dir/versitygw.pid"
    if grep -q 'xattr' "$dir/versitygw.log"; then
      die "versitygw keeps object metadata in user extended attributes, which the file system" \
        "under $dir/root does not support (tmpfs before Linux 6.6, ext4 mounted with" \
        "nouser_xattr, some overlay and network file systems). Set PGWARD_OBJECTSTORE_DIR to a" \
        "directory on ext4, xfs or btrfs. versitygw said: $(tail -n 1 "$dir/versitygw.log")"
    fi
    die "versitygw exited: $(tail -n 5 "$dir/versitygw.log")"
  fi
  if answers "$port"; then
    report
    exit 0
  fi
  sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$dir/versitygw.pid"
die "versitygw did not answer on port $port within 10 s: $(tail -n 5 "$dir/versitygw.log")"
