#!/bin/sh
# Runs in the operand image's root filesystem ($1) after Debian's essential
# packages and before postgresql-common, so that the package keeps the
# postgres user it finds instead of choosing its own ids.
#
# PostgreSQL runs as uid/gid 26, the ids Cloud Native PostgreSQL's images use
# and pgward's pods set (runAsUser/runAsGroup/fsGroup 26). Debian's
# base-passwd gives gid 26 to "tape", which no container needs.
set -eu
root=${1:?root directory}

sed -i '/^tape:/d' "$root/etc/group"
echo 'postgres:x:26:' >> "$root/etc/group"
# The shadow files exist only once passwd is configured, which then derives
# them from the files above.
if [ -f "$root/etc/gshadow" ]; then
  sed -i '/^tape:/d' "$root/etc/gshadow"
  echo 'postgres:!::' >> "$root/etc/gshadow"
fi
echo 'postgres:x:26:26:PostgreSQL administrator:/var/lib/postgresql:/usr/sbin/nologin' >> "$root/etc/passwd"

# pgward creates its own data directories; the package must not initdb a
# "main" cluster at install time.
mkdir -p "$root/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' > "$root/etc/postgresql-common/createcluster.d/pgward.conf"
