#!/usr/bin/env bash
# The test command (README, .ci/run): installs what a fresh Debian 12 machine lacks, idempotently, then runs
# the formatters, linters and every test against real PostgreSQL 15 and 17 servers that the tests start.
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

log "linters: shellcheck, hadolint, yamllint, actionlint (scripts/lint.sh)"
bash scripts/lint.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test"
cargo test --workspace --no-fail-fast
