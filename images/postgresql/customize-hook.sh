#!/bin/sh
# Runs in the operand image's root filesystem ($1) once every package is
# installed. Each step removes something an attacker or a scanner would
# find (Dockle's CIS-DI checks, the DISA container guide), or something that
# would make two builds from the same packages differ.
set -eu
root=${1:?root directory}

# ssl-cert generates a private key at install time: a key baked into an
# image is a shared secret (CIS-DI-0010), and random, so unreproducible.
# pgward brings its own certificates.
rm -f "$root/etc/ssl/private/ssl-cert-snakeoil.key" "$root/etc/ssl/certs/ssl-cert-snakeoil.pem"

# No setuid/setgid programs: nothing in the container may gain privileges
# (the pods also set allowPrivilegeEscalation: false). Directories lose
# their setgid bit too (/var/mail, /var/local): no file here needs a group
# it would inherit.
find "$root" -xdev \( -type f -o -type d \) -perm /6000 -exec chmod ug-s {} +

# Manual pages: the dpkg filters keep /usr/share/man empty, but PostgreSQL
# keeps its own under /usr/share/postgresql and links them in through
# alternatives.
rm -rf "$root/usr/share/postgresql/15/man"
find "$root/usr/share/man" -mindepth 1 -delete
for alt in "$root"/etc/alternatives/*.gz; do
  [ -e "$alt" ] || [ ! -L "$alt" ] || rm -f "$alt"
done

# Nothing runs as root, nobody logs in: no shell profiles. The info
# directory index is all that is left of the info pages.
rm -f "$root/root/.bashrc" "$root/root/.profile" "$root/usr/share/info/dir"

# Copied from the build host; the runtime mounts its own.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
# Backups dpkg and debconf keep of their databases.
rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old

# Mount points of the pod's volumes (data, configuration), owned by the
# postgres user so that an image run by hand works too.
mkdir -p "$root/var/lib/postgresql/data" "$root/etc/pgward"
chown 26:26 "$root/var/lib/postgresql" "$root/var/lib/postgresql/data"
chmod 0700 "$root/var/lib/postgresql/data"
