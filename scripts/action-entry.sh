#!/usr/bin/env bash
# Runs the pinned supaneon-sync image for the composite action; the container's exit code is the step's.
# Every INPUT_* value travels in the environment (docker run -e NAME copies it from ours), never on a
# command line; the runner's output and summary files are mounted so the container can append to them.
# Composite actions have no post step: the binary cleans up its temporary branches inside the run.
#
# The image: image-ref holds exactly one reference (lines starting with # are comments), which must be
# ghcr.io/<owner>/supaneon-sync@sha256:<64 hex>, <owner> being the owner of the action's repository
# ($GITHUB_ACTION_REPOSITORY, in lower case). The release workflow writes it into the commit it tags vX.Y.Z
# (scripts/pin-image-ref.sh); any other commit names no image, and the error says which ref to use.
# Anything else (a tag, a short digest, another owner's image) is refused with exit 2 before Docker runs.
#
# `--print-image`: check image-ref, print the image reference and exit (release.yml checks its release
# commit with it).
set -euo pipefail

action_path="${GITHUB_ACTION_PATH:?must run inside GitHub Actions}"

fail() { # fail EXIT_CODE MESSAGE: an error annotation, and the same line as the step's `result` output.
  local code="$1" message="$2"
  echo "::error title=supaneon-sync::${message}" >&2
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    printf 'result=%s\n' "${message//$'\n'/ }" >> "$GITHUB_OUTPUT" || true
  fi
  exit "$code"
}

# The repository the action comes from: $GITHUB_ACTION_REPOSITORY for `uses: owner/repo@ref`; the runner
# leaves it empty for a local `uses: ./`, whose code is the workflow's own repository.
action_repo="${GITHUB_ACTION_REPOSITORY:-${GITHUB_REPOSITORY:-}}"
owner="${action_repo%%/*}"
owner="${owner,,}"
[[ -n "$action_repo" ]] || action_repo="org/supaneon-sync"
use_release="use a release of the action: \`uses: ${action_repo}@v1\` (or another release tag vX / vX.Y.Z from https://github.com/${action_repo}/releases, or the commit SHA such a tag points at)"

# The one reference in image-ref: comments and blank lines skipped, surrounding whitespace trimmed.
read_image_ref() {
  local line refs=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [[ -n "$line" ]] && refs+=("$line")
  done < "$action_path/image-ref"
  if ((${#refs[@]} != 1)); then
    fail 2 "image-ref must hold exactly one image reference, found ${#refs[@]}; ${use_release}"
  fi
  printf '%s' "${refs[0]}"
}

# Refuses every image-ref but a full digest in the owner's namespace, naming the fix.
check_image_ref() {
  local ref="$1" digest_re='^sha256:[0-9a-f]{64}$'
  if [[ -z "$owner" ]]; then
    fail 2 "cannot tell the action's owner (GITHUB_ACTION_REPOSITORY is empty); run supaneon-sync as \`uses: owner/supaneon-sync@v1\`"
  fi
  local expected="ghcr.io/${owner}/supaneon-sync"
  if [[ "$ref" != *@* ]]; then
    fail 2 "this commit of ${action_repo} is not a release: image-ref is '${ref}', not an image digest; ${use_release}"
  fi
  local name="${ref%%@*}" digest="${ref#*@}"
  if [[ ! "$digest" =~ $digest_re ]]; then
    fail 2 "image-ref '${ref}' is not a full digest (sha256: and 64 hex characters); ${use_release}"
  fi
  if [[ "$name" != "$expected" ]]; then
    fail 2 "image-ref '${ref}' is not in the namespace of the action's owner (${expected}); the action hands your secrets only to its owner's image, so ${use_release}"
  fi
}

# The self-test builds the image on the runner and names it here. Only a local image is accepted, so the
# override cannot swap the pinned release for some other registry's image; it is never pulled.
if [[ -n "${SUPANEON_SYNC_IMAGE:-}" ]]; then
  if [[ "$SUPANEON_SYNC_IMAGE" != localhost/* && "$SUPANEON_SYNC_IMAGE" != "supaneon-sync:selftest" ]]; then
    fail 2 "SUPANEON_SYNC_IMAGE may only name a locally built image (localhost/… or supaneon-sync:selftest)"
  fi
  image="$SUPANEON_SYNC_IMAGE"
  pull=false
else
  image="$(read_image_ref)"
  check_image_ref "$image"
  pull=true
fi

if [[ "${1:-}" == "--print-image" ]]; then
  printf '%s\n' "$image"
  exit 0
fi

# A `container:` job: the step runs inside the job container, where the runner maps its work directory to
# /__w (GITHUB_WORKSPACE and RUNNER_TEMP under /__w/). `docker run -v` paths are resolved by the Docker
# engine on the host, so the output and summary files (and the workspace) would not reach the container.
# A runner that itself runs in a container (e.g. actions-runner-controller) keeps its host paths and passes.
if [[ "${GITHUB_ACTIONS:-}" == true && ( "${RUNNER_TEMP:-}" == /__w/* || "${GITHUB_WORKSPACE:-}" == /__w/* ) ]]; then
  fail 2 "supaneon-sync cannot run inside a \`container:\` job (it starts its own container, and the runner's files would not reach it): run this step in a job without \`container:\` (e.g. runs-on: ubuntu-latest), or run the image ${image} yourself with the command \`supaneon-sync action\`"
fi
if ! command -v docker >/dev/null; then
  fail 2 "supaneon-sync needs Docker on the runner (Linux runners only): docker is not on PATH"
fi

# Bounded pull retries: a registry hiccup costs a few seconds, not the night's backup. docker run then
# never pulls again (--pull never), so what runs is what was pulled.
if [[ "$pull" == true ]]; then
  attempts=3
  for ((attempt = 1; ; attempt++)); do
    if docker pull --quiet "$image"; then
      break
    fi
    if ((attempt >= attempts)); then
      fail 1 "could not pull ${image} after ${attempts} attempts; the registry may be unavailable, re-run the job"
    fi
    echo "::warning title=supaneon-sync::pulling ${image} failed (attempt ${attempt} of ${attempts}), retrying" >&2
    sleep $((5 * 3 ** (attempt - 1)))
  done
fi

env_args=()
while read -r name; do
  env_args+=(-e "$name")
done < <(compgen -e | grep -E '^INPUT_[A-Z0-9_]+$' || true)
# The documented environment settings, the runner's debug switch (re-run with debug logging: RUNNER_DEBUG=1) and
# what names the workflow the github-token input re-enables (the API, the repository, the workflow file), by name
# and only when set, as the inputs.
for name in SUPANEON_LOG SUPANEON_NEON_CALL_DEADLINE_SECONDS SUPANEON_NEON_CA_FILE SUPANEON_STALL_TIMEOUT_SECONDS \
  RUNNER_DEBUG GITHUB_API_URL GITHUB_REPOSITORY GITHUB_WORKFLOW_REF; do
  if [[ -n "${!name+x}" ]]; then
    env_args+=(-e "$name")
  fi
done

touch "$GITHUB_OUTPUT" "$GITHUB_STEP_SUMMARY"
# --network host: reach services and emulators on the runner's localhost, as a process on the runner would.
# No --init: the image's entrypoint is tini.
exec docker run --rm --pull never --network host \
  "${env_args[@]}" \
  -e GITHUB_ACTIONS=true \
  -e GITHUB_OUTPUT=/github/file_commands/output \
  -e GITHUB_STEP_SUMMARY=/github/file_commands/summary \
  -v "$GITHUB_OUTPUT:/github/file_commands/output" \
  -v "$GITHUB_STEP_SUMMARY:/github/file_commands/summary" \
  -v "${GITHUB_WORKSPACE:-$PWD}:/github/workspace:ro" \
  -w /github/workspace \
  "$image" action
