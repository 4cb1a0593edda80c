#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/demo.sh: installs what a fresh Debian 12 machine lacks
# (PostgreSQL 15 and contrib from Debian, openssl, shellcheck, runuser) and caches PostgreSQL 17 binaries.
# Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_apt=()
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || need_apt+=(postgresql-15)
[[ -f /usr/share/postgresql/15/extension/pgcrypto.control ]] || need_apt+=(postgresql-contrib)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v runuser >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if [[ -f scripts/fetch-postgres.sh ]]; then
  log "PostgreSQL 17 binaries (cached in .cache/postgres/17)"
  bash scripts/fetch-postgres.sh
fi
