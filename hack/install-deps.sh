#!/usr/bin/env bash
# Installs what pgward's demo and tests need on a fresh Debian machine:
# PostgreSQL 15 and pgBackRest from Debian (the server stays stopped: pgward
# runs its own instances), a Java runtime and PgJDBC (the end-to-end test of the
# connection secrets' jdbc-uri runs the real driver; the JRE alone runs a
# one-file Java program from source, no JDK needed: about 190 MB installed,
# 45 MB downloaded), Prometheus (the alerts and dashboard are tested against
# a real one) and the pinned Go tools (cached outside the repository).
#
#   install-deps.sh          the local runtime's demo and tests
#   install-deps.sh --kube   PostgreSQL and what `make images` and the one-node
#                            cluster (hack/kube-up.sh) need: mmdebstrap,
#                            containerd, runc, the CNI plugins, iptables,
#                            ipset, conntrack (not Java, not the linter)
set -euo pipefail

packages=()
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  packages+=(postgresql-15 postgresql-client-15)
fi
# pgBackRest stores backups and archived WAL (spec.backup, docs/backup.md).
if ! command -v pgbackrest >/dev/null 2>&1; then
  packages+=(pgbackrest)
fi
# The retention test moves pgBackRest's clock (libfaketime, 0.2 MB).
if [ "${1:-}" != "--kube" ] && ! command -v faketime >/dev/null 2>&1; then
  packages+=(faketime)
fi
if [ "${1:-}" != "--kube" ]; then
  # Prometheus and promtool (Debian's 2.42, about 100 MB installed) for the
  # tests of config/monitoring against a real Prometheus (test/e2e).
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    packages+=(prometheus)
  fi
  # A real OpenLDAP server for postgresql.ldap's test (test/e2e TestLDAP:
  # slapd, run by the test itself as an unprivileged user; slapadd).
  [ -x /usr/sbin/slapd ] || packages+=(slapd ldap-utils)
  command -v java >/dev/null 2>&1 || packages+=(default-jre-headless)
  [ -f /usr/share/java/postgresql.jar ] || packages+=(libpostgresql-jdbc-java)
fi
if [ "${1:-}" = "--kube" ]; then
  for p in mmdebstrap containerd runc containernetworking-plugins iptables ipset conntrack; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || packages+=("$p")
  done
fi

if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; run: sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
  echo "installing from Debian: ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages from starting Debian's default
  # PostgreSQL cluster or a system containerd; an administrator's own policy
  # is left as it is.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# The linter the tests need (not for --kube, which only adds packages).
if [ "${1:-}" != "--kube" ]; then
  "$(dirname "$0")/tools.sh" >/dev/null
fi
