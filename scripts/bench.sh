#!/usr/bin/env bash
# Benchmark (issue 5): `supaneon-sync backup-run`, verification included, against a bare
# `pg_dump -Fc | pg_restore` of the same database (pgbench plus jsonb tables with a GIN index). Runs
# alternate; it prints every run, the medians, the ratio backup-run / bare and our peak RSS, and where our
# time goes (phases read from our log). A measurement, not a test: it exits non-zero only when something
# fails. Run as root on Debian 12 (the servers run as `nobody`); everything lives in one temporary
# directory that the exit trap removes together with the servers and the emulator it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

usage() {
  cat <<'EOF'
usage: scripts/bench.sh [--scale S] [--runs N] [--operation-step-ms MS] [--no-build] [--tool PATH] [--compare PATH]
                       [--keep-log DIR] [--storage-runs N] [--migrate-at K]
  --scale S              pgbench scale; the app tables grow with it (default 65: about 1.5 GB on disk)
  --runs N               runs of each method, alternating (default 3)
  --operation-step-ms MS the emulator's time per Neon operation phase (default 20; Neon's API is not measured)
  --no-build             use the release binaries already in target/release
  --tool PATH            time this supaneon-sync binary instead (e.g. a saved build)
  --compare PATH         also time this second binary in every round (before/after of a change)
  --keep-log DIR         copy our logs of every run into DIR
  --storage-runs N       then, for each strategy (full, snapshot), N daily backups kept side by side, 1 % of
                         the accounts rows changed before each: the Neon storage billed by Neon's rule (the
                         emulator's synthetic_storage_size), the bytes each run read from the source and its
                         wall time, the WAL the source wrote meanwhile (incremental runs: their phases, and
                         whether the target started a checkpoint by WAL volume); with N <= 7 (Neon's
                         10 branches), each 1 % snapshot run is also followed by a timed full backup of the
                         same data, deleted again; then one snapshot run with nothing changed (default 0:
                         skipped). Before every run, untimed: a checkpoint on both clusters and `sync`
  --migrate-at K         with --storage-runs: a migration (a column added to pgbench_branches) before daily
                         run K as well, which makes strategy snapshot rebuild its mirror in full; run K is
                         reported apart and left out of the 1 % runs' medians (default 0: none)
The timed runs above use strategy full: each is a complete restore, the measure against the bare pipe.
EOF
}

SCALE=65 RUNS=3 STEP_MS=20 BUILD=1 KEEP_LOG='' TOOL='' COMPARE='' STORAGE_RUNS=0 MIGRATE_AT=0
while (($#)); do
  case $1 in
    --scale) SCALE=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --operation-step-ms) STEP_MS=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep-log) KEEP_LOG=${2:?}; shift 2 ;;
    --tool) TOOL=$(realpath "${2:?}"); shift 2 ;;
    --compare) COMPARE=$(realpath "${2:?}"); shift 2 ;;
    --storage-runs) STORAGE_RUNS=${2:?}; shift 2 ;;
    --migrate-at) MIGRATE_AT=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$SCALE" "$RUNS" "$STEP_MS" "$STORAGE_RUNS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "not a positive integer: $n" >&2; exit 2; }
done
if ! [[ $MIGRATE_AT =~ ^[0-9]+$ ]] || ((MIGRATE_AT == 1 || MIGRATE_AT > STORAGE_RUNS)); then
  echo "--migrate-at must name a daily run after the first, at most --storage-runs: $MIGRATE_AT" >&2
  exit 2
fi

# The snapshot block pairs each 1 % run with a full backup of the same data when Neon's free plan's 10 branches leave
# room for it beside the default branch, the mirror and the runs' backups.
PAIRED_FULL=$((STORAGE_RUNS <= 7))

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: the PostgreSQL servers are started as user nobody"
PGBIN=/usr/lib/postgresql/15/bin
need_apt=()
[[ -x $PGBIN/initdb ]] || need_apt+=(postgresql-15)
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
command -v runuser >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if ((BUILD)); then
  say "release build"
  cargo build --quiet --release -p supaneon-sync -p neon-emulator
fi
RELEASE_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
TOOL=${TOOL:-$RELEASE_DIR/supaneon-sync}
EMULATOR=$RELEASE_DIR/neon-emulator
[[ -x $TOOL && -x $EMULATOR && ( -z $COMPARE || -x $COMPARE ) ]] || die "no release binaries in target/release (drop --no-build)"

W=$(mktemp -d /tmp/supaneon-bench.XXXXXX)
EMU_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $EMU_PID ]]; then kill "$EMU_PID" 2>/dev/null && wait "$EMU_PID" 2>/dev/null; fi
  for c in src tgt; do
    if [[ -f $W/$c/postmaster.pid ]]; then
      runuser -u nobody -- "$PGBIN/pg_ctl" -D "$W/$c" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chown nobody:nogroup "$W"
chmod 700 "$W"

# ---- clusters (like the testkit: scram, TLS with a throwaway certificate, hostssl only, fsync off) ----
# A throwaway CA and a server certificate for 127.0.0.1, so supaneon-sync verifies in full (verify-full and
# channel binding on the branches, as against Neon) while the bare pipe uses sslmode=require.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$W/ca.key" -out "$W/ca.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
  -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$W/server.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial -days 2 \
  -extfile "$W/server.ext" -out "$W/server.crt" 2>/dev/null
chown nobody:nogroup "$W/server.key" "$W/server.crt"
chmod 600 "$W/server.key"

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}

# start_cluster NAME SUPERUSER -> prints the port
start_cluster() {
  local name=$1 su=$2 d=$W/$1 port
  openssl rand -hex 16 >"$W/$name.pw"
  chown nobody:nogroup "$W/$name.pw"
  runuser -u nobody -- "$PGBIN/initdb" -D "$d" -A scram-sha-256 -U "$su" --pwfile="$W/$name.pw" \
    --no-sync -E UTF8 --locale=C >"$W/$name.initdb.log" 2>&1 || die "initdb $name failed: $(cat "$W/$name.initdb.log")"
  printf 'local all %s trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n' "$su" >"$d/pg_hba.conf"
  cat >>"$d/postgresql.conf" <<EOF
# scripts/bench.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W'
ssl = on
ssl_cert_file = '$W/server.crt'
ssl_key_file = '$W/server.key'
password_encryption = 'scram-sha-256'
fsync = off
max_connections = 100
EOF
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if runuser -u nobody -- "$PGBIN/pg_ctl" -D "$d" -l "$W/$name.log" -w -o "-p $port" start >/dev/null 2>&1; then
      echo "$port"
      return
    fi
  done
  die "cluster $name did not start: $(tail -5 "$W/$name.log")"
}

# su_psql PORT SUPERUSER DB [psql args...]: the superuser over the Unix socket (trust).
su_psql() {
  local port=$1 su=$2 db=$3
  shift 3
  PGOPTIONS='-c client_min_messages=warning' "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$W" -p "$port" -U "$su" -d "$db" "$@"
}

say "starting the source and target clusters (PostgreSQL 15)"
SRC_PORT=$(start_cluster src supabase_admin)
TGT_PORT=$(start_cluster tgt cloud_admin)

# Source: the customer role `postgres` (not a superuser, pg_read_all_data) owns the data, as on Supabase.
# Passwords travel on stdin and in the environment only.
SRC_PW=$(openssl rand -hex 16)
printf "CREATE ROLE postgres LOGIN NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS PASSWORD '%s';
GRANT pg_read_all_data TO postgres;
CREATE DATABASE bench OWNER postgres;\n" "$SRC_PW" | su_psql "$SRC_PORT" supabase_admin postgres
export PGSSLMODE=require
SRC_CONNINFO="host=127.0.0.1 port=$SRC_PORT user=postgres dbname=bench sslmode=require"

USERS=$((200000 * SCALE / 65 + 100)) EVENTS=$((1500000 * SCALE / 65 + 100)) DOCS=$((60000 * SCALE / 65 + 100))
say "generating the source: pgbench -i -s $SCALE, $USERS users, $EVENTS jsonb events (GIN), $DOCS 1 KB docs"
gen_started=$(date +%s)
PGPASSWORD=$SRC_PW "$PGBIN/pgbench" -i -s "$SCALE" -I dtGvpf -q "$SRC_CONNINFO" >"$W/pgbench.log" 2>&1 ||
  die "pgbench -i failed: $(tail -5 "$W/pgbench.log")"
PGPASSWORD=$SRC_PW "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -v users="$USERS" -v events="$EVENTS" -v docs="$DOCS" \
  -f bench/app_tables.sql "$SRC_CONNINFO" >"$W/app_tables.log" 2>&1 || die "app tables failed: $(tail -5 "$W/app_tables.log")"
SRC_SIZE=$(su_psql "$SRC_PORT" supabase_admin bench -c "SELECT pg_database_size('bench')")
SRC_TABLES=$(su_psql "$SRC_PORT" supabase_admin bench -c \
  "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
say "source ready in $(($(date +%s) - gen_started)) s: $((SRC_SIZE / 1048576)) MB on disk, $SRC_TABLES tables"

# ---- the emulator on the target cluster ----
API_KEY=$(openssl rand -hex 16)
PROJECT=bench-project-12345678
say "starting the release neon-emulator"
NEON_EMULATOR_API_KEY=$API_KEY "$EMULATOR" --listen 127.0.0.1:0 \
  --postgres "host=$W port=$TGT_PORT user=cloud_admin dbname=postgres" \
  --public-host 127.0.0.1 --public-port "$TGT_PORT" \
  --project-id "$PROJECT" --pg-version 15 --operation-step-ms "$STEP_MS" >"$W/emulator.out" 2>"$W/emulator.log" &
EMU_PID=$!
API_URL=
for _ in $(seq 300); do
  API_URL=$(sed -n 's/^NEON_API_BASE_URL=//p' "$W/emulator.out")
  [[ -n $API_URL ]] && break
  kill -0 "$EMU_PID" 2>/dev/null || die "the emulator exited: $(tail -5 "$W/emulator.log")"
  sleep 0.1
done
[[ -n $API_URL ]] || die "the emulator did not announce its URL within 30 s"
# The API key reaches curl through a header file, never its argv.
printf 'Authorization: Bearer %s\n' "$API_KEY" >"$W/auth.header"
neon_api() {
  local path=$1
  shift
  curl -fsS -H "@$W/auth.header" "$API_URL/projects/$PROJECT$path" "$@"
}
# The project owner's password, which the bare pipe restores with (the tool asks the API for it).
TGT_PW=$(su_psql "$TGT_PORT" cloud_admin postgres -c \
  "SELECT password FROM neon_emulator_role_passwords WHERE role_name = 'neondb_owner'")
[[ -n $TGT_PW ]] || die "the emulator stored no password for neondb_owner"

# Deletes branch ID, retried while the project is locked by the previous change (423).
delete_branch() {
  local tries=0
  until neon_api "/branches/$1" -X DELETE >/dev/null 2>&1; do
    ((++tries < 100)) || die "could not delete branch $1"
    sleep 0.1
  done
}

# Every branch but the default one goes, so the target never fills up.
delete_backup_branches() {
  local id
  # Children first (newest first).
  for id in $(neon_api /branches | jq -r '[.branches[] | select(.default | not)] | sort_by(.created_at) | reverse | .[].id'); do
    delete_branch "$id"
  done
}

prepare_run() {
  delete_backup_branches
  su_psql "$TGT_PORT" cloud_admin postgres -c "DROP DATABASE IF EXISTS bare WITH (FORCE)"
  settle
}

# Between runs, untimed: both clusters checkpointed and the kernel's dirty pages written out, so that a run
# does not pay for the writes of the one before it (daily runs are a day apart; a branch copy on the
# emulator leaves 1.6 GB of them behind, which Neon's copy-on-write branches never write).
settle() {
  su_psql "$TGT_PORT" cloud_admin postgres -c CHECKPOINT
  su_psql "$SRC_PORT" supabase_admin postgres -c CHECKPOINT
  sync
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# (a) the bare pipe into a fresh database owned by the Neon project owner, restored as that owner.
run_bare() {
  local i=$1 t0 t1
  su_psql "$TGT_PORT" cloud_admin postgres -c "CREATE DATABASE bare OWNER neondb_owner"
  export BENCH_SRC_PW=$SRC_PW BENCH_TGT_PW=$TGT_PW BENCH_SRC=$SRC_CONNINFO PGBIN
  export BENCH_TGT="host=127.0.0.1 port=$TGT_PORT user=neondb_owner dbname=bare sslmode=require"
  t0=$(now)
  # shellcheck disable=SC2016 # expanded by the inner shell, so no password reaches an argv
  /usr/bin/time -f %M -o "$W/bare.rss" bash -c 'set -o pipefail
    PGPASSWORD=$BENCH_SRC_PW "$PGBIN/pg_dump" -Fc -d "$BENCH_SRC" |
      PGPASSWORD=$BENCH_TGT_PW "$PGBIN/pg_restore" --no-owner --no-acl -d "$BENCH_TGT"' >"$W/bare.log" 2>&1 ||
    die "bare run $i failed: $(tail -20 "$W/bare.log")"
  t1=$(now)
  unset BENCH_SRC_PW BENCH_TGT_PW
  local tables
  tables=$(su_psql "$TGT_PORT" cloud_admin bare -c \
    "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
  [[ $tables == "$SRC_TABLES" ]] || die "bare run $i restored $tables tables, the source has $SRC_TABLES"
  BARE_WALL=$(elapsed "$t0" "$t1")
  BARE_RSS=$(tail -1 "$W/bare.rss")
}

# Seconds of the day of a log line's timestamp (`2026-12-01T12:34:56.789Z`), for the awk programs below.
AWK_TS='function ts(s) { split(substr(s, 12, 15), p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }'

# Phases of one backup-run, from our log: setup (preflight, Neon branch, schema archive, target
# preparation), data (the stream, plus the large index still building when it ends), post-data (the
# parallel post-data restore, with the manifest and the table reads beside it), verify (what is left of
# it afterwards), finish.
phase_times() {
  awk "$AWK_TS"'
    /: starting$/                         { start = ts($1) }
    /: dumping /                          { dump = ts($1) }
    /: data restored /                    { data = ts($1) }
    /: restored bytes=/                   { restored = ts($1) }
    /: the branch matches the manifest /  { verified = ts($1) }
    /: backup complete /                  { done = ts($1) }
    END {
      if (!start || !dump || !data || !restored || !verified || !done) { print "? ? ? ? ?"; exit }
      printf "%.2f %.2f %.2f %.2f %.2f\n", dump - start, data - dump, restored - data, verified - restored, done - verified
    }' "$1"
}

# Seconds a snapshot run spent creating its backup branch: from the branch budget check before it to the
# branch's creation. On the emulator that is a copy of the mirror's database (with the checkpoint it needs);
# Neon branches in constant time. 0 when the log has no such step (strategy full).
branch_time() {
  awk "$AWK_TS"'
    /: branch budget: /                         { budget = ts($1) }
    /: backup created: a snapshot of the verified mirror/ { if (budget) t = ts($1) - budget }
    END { printf "%.2f\n", t }' "$1"
}

# (b) backup-run; its peak RSS both from GNU time (the largest process of its tree) and from VmHWM of
# our own process, sampled until it exits, like its own CPU time (without pg_dump's and pg_restore's).
run_tool() {
  local i=$1 tool=$2 t0 t1 pid hwm=0 h ticks=0 t
  (
    export SUPABASE_DATABASE_URL="postgresql://postgres:$SRC_PW@127.0.0.1:$SRC_PORT/bench?sslmode=verify-full&sslrootcert=$W/ca.crt"
    export SUPANEON_NEON_CA_FILE=$W/ca.crt
    export NEON_API_KEY=$API_KEY NEON_PROJECT_ID=$PROJECT NEON_API_URL=$API_URL
    export SUPANEON_PG_BIN_DIR=$PGBIN SUPANEON_PRUNE_AFTER_BACKUP=false
    export SUPANEON_STRATEGY=${STRATEGY:-full} GITHUB_OUTPUT=$W/outputs-$i
    : >"$GITHUB_OUTPUT"
    exec /usr/bin/time -f %M -o "$W/tool.rss" "$tool" backup-run
  ) >"$W/tool-$i.out" 2>"$W/tool-$i.log" &
  pid=$!
  t0=$(now)
  local child=
  while kill -0 "$pid" 2>/dev/null; do
    [[ -n $child ]] || child=$(awk '{ print $1 }' "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    if [[ -n $child ]]; then
      h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$child/status" 2>/dev/null || true)
      [[ -n $h ]] && ((h > hwm)) && hwm=$h
      # utime + stime (fields 14 and 15; the command name in field 2 has no spaces)
      t=$(awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true)
      [[ -n $t ]] && ticks=$t
    fi
    sleep 0.05
  done
  wait "$pid" || die "backup-run $i failed: $(tail -30 "$W/tool-$i.log")"
  t1=$(now)
  [[ -z $KEEP_LOG ]] || { mkdir -p "$KEEP_LOG" && cp "$W/tool-$i.log" "$KEEP_LOG/$(basename "$tool")-$i.log"; }
  TOOL_WALL=$(elapsed "$t0" "$t1")
  TOOL_TREE_RSS=$(tail -1 "$W/tool.rss")
  TOOL_RSS=$hwm
  TOOL_CPU=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
  read -r PH_SETUP PH_DATA PH_POST PH_VERIFY PH_FINISH < <(phase_times "$W/tool-$i.log")
}

# A cluster's WAL position, and the MB of WAL written since one. By position, not pg_stat_wal: on PostgreSQL 15
# that counts the WAL of parallel workers twice (measured: 811 MB for a parallel scan that wrote 499 MB).
wal_position() { su_psql "$1" "$2" postgres -c "SELECT pg_current_wal_lsn()"; }
wal_since() { su_psql "$1" "$2" postgres -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$3') / 1048576)"; }

# Phases of one incremental (snapshot) run, from our log: the comparison of both sides' manifests, the merge
# of the changed rows (to the last slice's end) and the merged tables' read again. "- - -" when the run merged no
# table by its rows written since the last sync (the first run, a rebuild, a run with nothing changed).
sync_phases() {
  awk "$AWK_TS"'
    /: schema archive: /                 { schema = ts($1) }
    /: tables compared on both sides /   { compared = ts($1) }
    /: copied and merged /               { merged = ts($1) }
    /: tables synced by the rows written since the last sync, read again / { again = ts($1) }
    END {
      if (!schema || !compared || !merged || !again) { print "- - -"; exit }
      printf "%.2f %.2f %.2f\n", compared - schema, merged - compared, again - merged
    }' "$1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }

METHODS=(backup-run)
declare -A BIN=([backup-run]=$TOOL)
[[ -z $COMPARE ]] || { METHODS+=(compare); BIN[compare]=$COMPARE; }
declare -A WALL RSS TREE CPU SETUP DATA POST VERIFY FINISH
ROWS=() BARE=''
say "$RUNS alternating runs of each method"
for i in $(seq "$RUNS"); do
  prepare_run
  la=$(load1)
  run_bare "$i"
  ROWS+=("$(printf '%-3s %-11s %8s %10s %9s   load %s' "$i" bare "$BARE_WALL" "$BARE_RSS" - "$la")")
  BARE+=" $BARE_WALL"
  say "run $i bare: $BARE_WALL s"
  for m in "${METHODS[@]}"; do
    prepare_run
    la=$(load1)
    run_tool "$i" "${BIN[$m]}"
    ROWS+=("$(printf '%-3s %-11s %8s %10s %9s   load %s; our cpu %s s; setup %s, data %s, post-data %s, verify %s, finish %s' \
      "$i" "$m" "$TOOL_WALL" "$TOOL_TREE_RSS" "$TOOL_RSS" "$la" "$TOOL_CPU" "$PH_SETUP" "$PH_DATA" "$PH_POST" "$PH_VERIFY" "$PH_FINISH")")
    WALL[$m]+=" $TOOL_WALL" RSS[$m]+=" $TOOL_RSS" TREE[$m]+=" $TOOL_TREE_RSS" CPU[$m]+=" $TOOL_CPU"
    SETUP[$m]+=" $PH_SETUP" DATA[$m]+=" $PH_DATA" POST[$m]+=" $PH_POST" VERIFY[$m]+=" $PH_VERIFY" FINISH[$m]+=" $PH_FINISH"
    say "run $i $m: $TOOL_WALL s"
  done
done
delete_backup_branches

med_bare=$(med "$BARE")
echo
echo "supaneon-sync benchmark: $((SRC_SIZE / 1048576)) MB source (pgbench -s $SCALE + app tables), PostgreSQL 15, $(nproc) CPUs"
for m in "${METHODS[@]}"; do echo "$m: ${BIN[$m]}"; done
echo
printf '%-3s %-11s %8s %10s %9s   %s\n' run method wall_s tree_rss_kb our_rss_kb notes
printf '%s\n' "${ROWS[@]}"
echo
echo "median wall: bare pg_dump -Fc | pg_restore $med_bare s"
for m in "${METHODS[@]}"; do
  med_tool=$(med "${WALL[$m]}")
  max_rss=$(tr ' ' '\n' <<<"${RSS[$m]}" | sort -n | tail -1)
  max_tree=$(tr ' ' '\n' <<<"${TREE[$m]}" | sort -n | tail -1)
  echo "$m: median wall $med_tool s, ratio $m / bare $(awk -v a="$med_bare" -v b="$med_tool" 'BEGIN { printf "%.3f", b / a }')"
  echo "  median phases: setup (preflight, Neon branch, schema, target preparation) $(med "${SETUP[$m]}") s, data with early index builds $(med "${DATA[$m]}") s, post-data with manifest and table reads $(med "${POST[$m]}") s, rest of verify $(med "${VERIFY[$m]}") s, finish $(med "${FINISH[$m]}") s; our CPU $(med "${CPU[$m]}") s"
  echo "  peak RSS of our process: $((max_rss / 1024)) MB ($max_rss kB, VmHWM); largest process of its tree: $((max_tree / 1024)) MB"
done

# ---- storage, egress and time over daily runs, both strategies (issue 15's measure) ----
# The value of output NAME of run I (heredoc form: NAME<<delimiter, value, delimiter).
output_of() { awk -v n="$2" 'index($0, n "<<") == 1 { getline; print; exit }' "$W/outputs-$1"; }
if ((STORAGE_RUNS > 0)); then
  relation_bytes="SELECT sum(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
    + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init')) FROM pg_class c
    WHERE pg_relation_filenode(c.oid) IS NOT NULL AND NOT c.relisshared"
  echo
  for STRATEGY in full snapshot; do
    prepare_run
    READS=() TIMES=() BRANCH_TIMES=() NET_TIMES=() COMPARES=() MERGES=() AGAINS=() WAL_CHECKPOINTS=() SRC_WAL_MB=()
    PAIRED=() PAIRED_RATIOS=()
    for i in $(seq "$STORAGE_RUNS"); do
      # A day's changes: 1 % of the accounts rows, spread over the whole table (every 100th row).
      ((i == 1)) || su_psql "$SRC_PORT" supabase_admin bench -c \
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = $((i % 100))"
      # A migration: changed definitions (a column of its own per strategy, the source is shared).
      ((i != MIGRATE_AT)) || su_psql "$SRC_PORT" supabase_admin bench -c \
        "ALTER TABLE pgbench_branches ADD COLUMN migrated_$STRATEGY text DEFAULT 'yes'"
      settle
      # Checkpoints the target started by WAL volume while the run went on (a merge's full-page images can
      # start one; the read after the merge then logs the pages it prunes whole again).
      tgt_lines=$(wc -l <"$W/tgt.log")
      # The WAL the source writes while the run reads it: its first read of the day's changed pages prunes
      # the row versions the changes replaced, and after a checkpoint logs each such page whole.
      src_wal=$(wal_position "$SRC_PORT" supabase_admin)
      run_tool "$STRATEGY$i" "$TOOL"
      src_wal_mb=$(wal_since "$SRC_PORT" supabase_admin "$src_wal")
      wal_checkpoints=$(tail -n +$((tgt_lines + 1)) "$W/tgt.log" | grep -c 'checkpoint starting: wal' || true)
      bt=$(branch_time "$W/tool-$STRATEGY$i.log")
      read -r compare merge again < <(sync_phases "$W/tool-$STRATEGY$i.log")
      if ((i == MIGRATE_AT)); then
        MIGRATED="$TOOL_WALL s, $(output_of "$STRATEGY$i" source-bytes) bytes read from the source"
      else
        READS+=("$(output_of "$STRATEGY$i" source-bytes)")
        TIMES+=("$TOOL_WALL")
        BRANCH_TIMES+=("$bt")
        NET_TIMES+=("$(awk -v a="$TOOL_WALL" -v b="$bt" 'BEGIN { printf "%.2f", a - b }')")
        ((i == 1)) || SRC_WAL_MB+=("$src_wal_mb")
        if ((i > 1)) && [[ $compare != - ]]; then
          COMPARES+=("$compare") MERGES+=("$merge") AGAINS+=("$again") WAL_CHECKPOINTS+=("$wal_checkpoints")
        fi
      fi
      phases=''
      [[ $compare == - ]] ||
        phases="; comparison $compare s, merge $merge s, read again $again s; checkpoints started by WAL volume: $wal_checkpoints"
      say "$STRATEGY run $i: $TOOL_WALL s, $(output_of "$STRATEGY$i" source-bytes) bytes read from the source$phases; WAL written on the source: $src_wal_mb MB"
      # The same day's data also backed up in full right after it, and that branch deleted again: each 1 % run
      # against a full backup of the same hour, whatever the machine did between the two strategies' blocks. The
      # 1 % run goes first, so it is the one that prunes the day's changed pages on the source.
      if [[ $STRATEGY == snapshot ]] && ((i > 1 && i != MIGRATE_AT && PAIRED_FULL)); then
        settle
        STRATEGY=full run_tool "paired$i" "$TOOL"
        PAIRED+=("$TOOL_WALL")
        PAIRED_RATIOS+=("$(awk -v a="${NET_TIMES[-1]}" -v b="$TOOL_WALL" 'BEGIN { printf "%.1f", 100 * a / b }')")
        delete_branch "$(output_of "paired$i" backup-branch-id)"
        say "a full backup of run $i's data right after it: $TOOL_WALL s; the 1 % run without the branch copy took ${PAIRED_RATIOS[-1]} % of it"
      fi
    done
    src_logical=$(su_psql "$SRC_PORT" supabase_admin bench -c "$relation_bytes")
    billed=$(neon_api "" | jq -r '.project.synthetic_storage_size')
    echo "strategy $STRATEGY: $STORAGE_RUNS daily backups (the first on an empty project; 1 % of pgbench_accounts changed before each later one):"
    echo "  source logical size $((src_logical / 1048576)) MB; Neon storage billed by Neon's rule $((billed / 1048576)) MB:" \
      "$(awk -v b="$billed" -v s="$src_logical" 'BEGIN { printf "%.2f", b / s }') × the source"
    ((MIGRATE_AT == 0)) || echo "  run $MIGRATE_AT, after the migration: $MIGRATED; the other runs below"
    echo "  bytes read from the source per run: ${READS[*]}"
    echo "  wall seconds per run: ${TIMES[*]}"
    [[ $STRATEGY != snapshot ]] ||
      echo "  of which creating the backup branch (the emulator's copy of the mirror; constant time on Neon): ${BRANCH_TIMES[*]}"
    full_time=${full_time:-$(printf '%s\n' "${TIMES[@]}" | median)}
    full_read=${full_read:-$(printf '%s\n' "${READS[@]}" | median)}
    if ((STORAGE_RUNS > 1)); then
      later_reads=$(printf '%s\n' "${READS[@]:1}" | median)
      later_times=$(printf '%s\n' "${TIMES[@]:1}" | median)
      echo "  a 1 % run (median of runs 2-$STORAGE_RUNS$( ((MIGRATE_AT == 0)) || echo " but $MIGRATE_AT")) against the first, full one: reads" \
        "$(awk -v a="$later_reads" -v b="${READS[0]}" 'BEGIN { printf "%.1f %%", 100 * a / b }'), takes" \
        "$(awk -v a="$later_times" -v b="${TIMES[0]}" 'BEGIN { printf "%.1f %%", 100 * a / b }')"
      echo "  a 1 % run against a full backup (median of strategy full's runs: $full_read bytes, $full_time s): reads" \
        "$(awk -v a="$later_reads" -v b="$full_read" 'BEGIN { printf "%.1f %%", 100 * a / b }'), takes" \
        "$(awk -v a="$later_times" -v b="$full_time" 'BEGIN { printf "%.1f %%", 100 * a / b }')"
      echo "  WAL the source wrote during those runs (median; the first read of the day's changed pages prunes them):" \
        "$(printf '%s\n' "${SRC_WAL_MB[@]}" | median) MB"
      if [[ $STRATEGY == snapshot ]]; then
        later_net=$(printf '%s\n' "${NET_TIMES[@]:1}" | median)
        echo "  the same without the emulator's branch copy: $later_net s, takes" \
          "$(awk -v a="$later_net" -v b="$full_time" 'BEGIN { printf "%.1f %%", 100 * a / b }') of a full backup"
        ((${#PAIRED[@]} == 0)) ||
          echo "  each 1 % run against a full backup of its day's data run right after it (${PAIRED[*]} s): without" \
            "the branch copy, a median $(printf '%s\n' "${PAIRED_RATIOS[@]}" | median) % (per run: ${PAIRED_RATIOS[*]} %)"
        if ((${#COMPARES[@]})); then
          echo "  phases of those runs (medians): comparison $(printf '%s\n' "${COMPARES[@]}" | median) s," \
            "merge $(printf '%s\n' "${MERGES[@]}" | median) s, merged tables read again $(printf '%s\n' "${AGAINS[@]}" | median) s;" \
            "runs in which the target started a checkpoint by WAL volume: $(printf '%s\n' "${WAL_CHECKPOINTS[@]}" | grep -vc '^0$' || true) of ${#COMPARES[@]}"
        fi
        # One more run with nothing changed: only digests and the definitions cross the wire.
        settle
        run_tool "${STRATEGY}-unchanged" "$TOOL"
        bt=$(branch_time "$W/tool-${STRATEGY}-unchanged.log")
        echo "  a run with nothing changed: $(output_of "${STRATEGY}-unchanged" source-bytes) bytes read from the source" \
          "(the schema archive; the manifests' digests are computed on the servers), $TOOL_WALL s, $bt s of it the branch copy"
      fi
    fi
  done
  delete_backup_branches
fi
