#!/usr/bin/env bash
# Runs the pinned supaneon-sync image for the composite action; the container's exit code is the step's.
# Every INPUT_* value travels in the environment (docker run -e NAME copies it from ours), never on a
# command line; the runner's output and summary files are mounted so the container can append to them.
# Composite actions have no post step: the binary cleans up its temporary branches inside the run.
set -euo pipefail

image_ref_file="${GITHUB_ACTION_PATH:?must run inside GitHub Actions}/image-ref"
image="$(tr -d '[:space:]' < "$image_ref_file")"
if [[ -z "$image" || "$image" == *":latest" || "$image" != *@sha256:* && "$image" != *:v[0-9]* ]]; then
  echo "::error title=supaneon-sync::image-ref must pin a version tag or digest, got '${image}'" >&2
  exit 2
fi

# The self-test builds the image on the runner and names it here. Only a local image is accepted, so the
# override cannot swap the pinned release for some other registry's image.
if [[ -n "${SUPANEON_SYNC_IMAGE:-}" ]]; then
  if [[ "$SUPANEON_SYNC_IMAGE" != localhost/* && "$SUPANEON_SYNC_IMAGE" != "supaneon-sync:selftest" ]]; then
    echo "::error title=supaneon-sync::SUPANEON_SYNC_IMAGE may only name a locally built image (localhost/… or supaneon-sync:selftest)" >&2
    exit 2
  fi
  image="$SUPANEON_SYNC_IMAGE"
fi

env_args=()
while read -r name; do
  env_args+=(-e "$name")
done < <(compgen -e | grep -E '^INPUT_[A-Z0-9_]+$' || true)
# The documented environment settings and the runner's debug switch (re-run with debug logging: RUNNER_DEBUG=1),
# by name and only when set, as the inputs.
for name in SUPANEON_LOG SUPANEON_NEON_CALL_DEADLINE_SECONDS RUNNER_DEBUG; do
  if [[ -n "${!name+x}" ]]; then
    env_args+=(-e "$name")
  fi
done

touch "$GITHUB_OUTPUT" "$GITHUB_STEP_SUMMARY"
# --network host: reach services and emulators on the runner's localhost, as a process on the runner would.
# No --init: the image's entrypoint is tini.
exec docker run --rm --network host \
  "${env_args[@]}" \
  -e GITHUB_ACTIONS=true \
  -e GITHUB_OUTPUT=/github/file_commands/output \
  -e GITHUB_STEP_SUMMARY=/github/file_commands/summary \
  -v "$GITHUB_OUTPUT:/github/file_commands/output" \
  -v "$GITHUB_STEP_SUMMARY:/github/file_commands/summary" \
  -v "${GITHUB_WORKSPACE:-$PWD}:/github/workspace:ro" \
  -w /github/workspace \
  "$image" action
