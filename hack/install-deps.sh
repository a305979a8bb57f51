#!/usr/bin/env bash
# Installs what pgward's demo and tests need on a fresh Debian machine:
# PostgreSQL 15 from Debian (the server stays stopped: pgward runs its own
# instances) and the pinned Go tools (cached outside the repository).
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed; run: sudo apt-get install -y postgresql-15" >&2
    exit 1
  fi
  echo "installing PostgreSQL 15 from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package from starting Debian's default cluster;
  # an administrator's own policy is left as it is.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >&2
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
"$(dirname "$0")/tools.sh" >/dev/null
