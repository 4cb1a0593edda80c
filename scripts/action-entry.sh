#!/usr/bin/env bash
# Runs the pinned supaneon-sync image for the composite action.
# Every INPUT_* value travels in the environment (docker run -e NAME copies it from ours), never on a
# command line; the runner's output and summary files are mounted so the container can append to them.
set -euo pipefail

image_ref_file="${GITHUB_ACTION_PATH:?must run inside GitHub Actions}/image-ref"
image="$(tr -d '[:space:]' < "$image_ref_file")"
if [[ -z "$image" || "$image" == *":latest" ]]; then
  echo "::error title=supaneon-sync::image-ref must pin a version tag or digest, got '${image}'" >&2
  exit 2
fi

env_args=()
while read -r name; do
  env_args+=(-e "$name")
done < <(compgen -e | grep -E '^INPUT_[A-Z0-9_]+$' || true)

touch "$GITHUB_OUTPUT" "$GITHUB_STEP_SUMMARY"
exec docker run --rm --init --network host \
  "${env_args[@]}" \
  -e GITHUB_ACTIONS=true \
  -e GITHUB_OUTPUT=/github/file_commands/output \
  -e GITHUB_STEP_SUMMARY=/github/file_commands/summary \
  -v "$GITHUB_OUTPUT:/github/file_commands/output" \
  -v "$GITHUB_STEP_SUMMARY:/github/file_commands/summary" \
  -v "${GITHUB_WORKSPACE:-$PWD}:/github/workspace:ro" \
  -w /github/workspace \
  "$image" action
