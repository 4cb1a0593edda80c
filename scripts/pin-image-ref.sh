#!/usr/bin/env bash
# Writes image-ref for a release commit: the image pinned by digest on the one line that
# scripts/action-entry.sh reads, and the version tag of the same image in a comment for people.
#
#   scripts/pin-image-ref.sh IMAGE DIGEST VERSION [--dry-run]
#     IMAGE    ghcr.io/<owner>/supaneon-sync (any case; written in lower case, as registries require)
#     DIGEST   sha256:<64 hex>, the multi-arch index digest the release pushed
#     VERSION  X.Y.Z (with or without a leading v)
#   --dry-run  print the new image-ref instead of writing it
#
# The file written is $IMAGE_REF_FILE, default image-ref at the repository root. Exit 2 on a malformed
# argument, and nothing is written.
set -euo pipefail

usage() {
  echo "usage: $0 ghcr.io/<owner>/supaneon-sync sha256:<64 hex> X.Y.Z [--dry-run]" >&2
  exit 2
}

(($# == 3 || $# == 4)) || usage
image="${1,,}"
digest="$2"
version="${3#v}"
dry_run=false
if (($# == 4)); then
  [[ "$4" == "--dry-run" ]] || usage
  dry_run=true
fi

image_re='^ghcr\.io/[a-z0-9]([a-z0-9-]*[a-z0-9])?/supaneon-sync$'
digest_re='^sha256:[0-9a-f]{64}$'
version_re='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
if [[ ! "$image" =~ $image_re ]]; then
  echo "image '$1' is not ghcr.io/<owner>/supaneon-sync" >&2
  exit 2
fi
if [[ ! "$digest" =~ $digest_re ]]; then
  echo "digest '$digest' is not sha256: followed by 64 lower-case hex characters" >&2
  exit 2
fi
if [[ ! "$version" =~ $version_re ]]; then
  echo "version '$3' is not X.Y.Z" >&2
  exit 2
fi

content="$(printf '%s\n' \
  "${image}@${digest}" \
  "# ${image}:v${version} is the tag of this digest, for people to read; the action runs only the digest above.")"

if [[ "$dry_run" == true ]]; then
  printf '%s\n' "$content"
else
  file="${IMAGE_REF_FILE:-$(dirname "$0")/../image-ref}"
  printf '%s\n' "$content" > "$file"
fi
