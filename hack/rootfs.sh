#!/usr/bin/env bash
# Builds the root filesystem of the operand image pgward/postgresql:15 (a
# Debian of this machine's release with postgresql-15 and pgbackrest at their
# latest security update, customized by images/postgresql/*-hook.sh) with mmdebstrap, no
# daemon, and prints the path of the tarball. Needs root.
#
# The result is cached outside the repository, keyed by the build's inputs:
# this script, the hooks, the package list and the state of the Debian index
# (its InRelease files). A security update changes the index, hence the key:
# the next run rebuilds. Timestamps are clamped to the index's own date, so
# the same index gives a byte-identical tarball.
#
# On every run, cached or not, the rootfs's package versions are compared
# with the current index: a pending update fails the build.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
hooks="$repo/images/postgresql"
cache="${PGWARD_CACHE:-$HOME/.cache/pgward}/rootfs"
sources="${PGWARD_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
# pgbackrest (2.45, ~1 MB: its libraries are PostgreSQL's) archives WAL,
# takes base backups and restores them for the instance manager.
packages=postgresql-15,pgbackrest
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"

if [ "$(id -u)" -ne 0 ]; then
  echo "building the operand image's root filesystem needs root (mmdebstrap --mode=root)" >&2
  exit 1
fi
if [ ! -f "$sources" ]; then
  echo "no apt sources at $sources (set PGWARD_APT_SOURCES to a deb822 .sources file)" >&2
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# A private apt index of exactly the sources the image is built from, so
# that neither the host's other repositories nor its own state matter.
apt_root="$cache/apt"
mkdir -p "$apt_root/sources.list.d" "$apt_root/lists/partial" "$apt_root/cache/archives/partial"
cp "$sources" "$apt_root/sources.list.d/image.sources"
apt_opts=(
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$apt_root/sources.list.d"
  -o "Dir::State::Lists=$apt_root/lists"
  -o "Dir::Cache=$apt_root/cache"
  -o "Acquire::Check-Valid-Until=false"
  -o "APT::Get::List-Cleanup=true"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -qq update >&2

index_files=("$apt_root"/lists/*InRelease)
if [ ! -f "${index_files[0]}" ]; then
  echo "apt update produced no InRelease file in $apt_root/lists" >&2
  exit 1
fi
# The index's newest Date: is the rootfs's timestamp.
epoch=0
for f in "${index_files[@]}"; do
  d="$(sed -n 's/^Date: //p' "$f" | head -1)"
  s="$(date -d "$d" +%s)"
  if [ "$s" -gt "$epoch" ]; then epoch=$s; fi
done

key="$(
  {
    cat "$0" "$hooks/essential-hook.sh" "$hooks/customize-hook.sh"
    echo "$packages $suite"
    mmdebstrap --version
    cat "${index_files[@]}"
  } | sha256sum | cut -c1-16
)"
out="$cache/$key"

if [ ! -f "$out/rootfs.tar" ]; then
  echo "building the operand root filesystem ($suite, $packages) into $out" >&2
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  SOURCE_DATE_EPOCH=$epoch mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --essential-hook="$hooks/essential-hook.sh" \
    --customize-hook="$hooks/customize-hook.sh" \
    "$suite" "$out.tmp/rootfs.tar" "$sources" >&2
  echo "$epoch" > "$out.tmp/epoch"
  mv "$out.tmp" "$out"
  # Older roots only take space: the index moved on.
  find "$cache" -mindepth 1 -maxdepth 1 -type d -not -name apt -not -name "$key" -exec rm -rf {} +
fi

# No pending update: simulate an upgrade of the rootfs's dpkg database
# against the index just fetched.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xOf "$out/rootfs.tar" ./var/lib/dpkg/status > "$tmp/status"
: > "$tmp/extended_states"
pending="$(apt-get "${apt_opts[@]}" -o "Dir::State::status=$tmp/status" \
  -o "Dir::State::extended_states=$tmp/extended_states" -s -qq dist-upgrade 2>&1 | grep '^Inst ' || true)"
if [ -n "$pending" ]; then
  echo "the operand root filesystem misses updates from the index:" >&2
  echo "$pending" >&2
  exit 1
fi

echo "$out/rootfs.tar"
