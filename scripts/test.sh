#!/usr/bin/env bash
# The test command (README, .ci/run): installs what a fresh Debian 12 machine lacks (scripts/setup.sh), then runs
# the linters, the dependency policy (cargo deny, offline), the formatter, clippy and every test against real
# PostgreSQL 15 and 17 servers that the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

bash scripts/setup.sh

log "linters: shellcheck, hadolint, yamllint, check-jsonschema, actionlint (scripts/lint.sh)"
bash scripts/lint.sh

log "dependency policy: cargo deny bans, licenses, sources, offline (scripts/deny.sh)"
bash scripts/deny.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test"
cargo test --workspace --no-fail-fast
