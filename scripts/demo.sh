#!/usr/bin/env bash
# The main job end to end on local parts. backup-run is not built yet: for now this builds the binary and
# runs validate-config on a local example configuration, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
export SUPABASE_DATABASE_URL="postgresql://postgres:demo-password@127.0.0.1:5432/postgres?sslmode=require"
export NEON_API_KEY="demo-api-key"
export NEON_PROJECT_ID="demo-project-00000000"
./target/debug/supaneon-sync validate-config
echo "backup-run is not built yet; this demo grows with it."
