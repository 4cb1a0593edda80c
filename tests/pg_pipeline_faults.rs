//! Faults in the middle of the dump→restore pipeline, against real PostgreSQL clusters for every major
//! in `test_majors()`: pg_dump killed, the run cancelled, the source gone.
//!
//! Mid-stream faults are made deterministic with a gate on the target: an event trigger makes
//! pg_restore's `CREATE TABLE` wait on an advisory lock the test holds, so the pipe fills and pg_dump
//! blocks inside its `COPY`. The test then kills, stops or cancels, and opens the gate.

mod pipeline;

use std::time::Duration;

use pipeline::*;
use supaneon_sync::pg::pipeline::{dump_and_restore, PipelineError};
use supaneon_testkit::{process_alive, send_signal, test_majors, Cluster};
use tokio::sync::watch;

const GATE_LOCK: i64 = 4242;

// ---------------------------------------------------------------------------------------------
// Faults mid-stream.

/// pg_restore's `CREATE TABLE` in `db` waits for advisory lock [`GATE_LOCK`] (held by the client
/// this returns) so the stream stalls with pg_dump inside its COPY.
async fn close_gate(target: &Cluster, db: &str) -> tokio_postgres::Client {
    target.psql(
        db,
        &format!(
            "CREATE SCHEMA test_gate;
             GRANT USAGE ON SCHEMA test_gate TO PUBLIC;
             CREATE FUNCTION test_gate.wait() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_advisory_lock({GATE_LOCK}); PERFORM pg_advisory_unlock({GATE_LOCK}); END $$;
             CREATE EVENT TRIGGER test_gate ON ddl_command_start WHEN TAG IN ('CREATE TABLE')
               EXECUTE FUNCTION test_gate.wait();"
        ),
    );
    let gate = target.admin_client(db).await;
    gate.simple_query(&format!("SELECT pg_advisory_lock({GATE_LOCK})"))
        .await
        .unwrap();
    gate
}

/// Waits until pg_restore is held at the gate and pg_dump is inside its COPY.
async fn wait_mid_stream(pair: &Pair, source_db: &str, target_db: &str) {
    let restore_waits = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{target_db}'
           AND application_name = 'supaneon-sync pg_restore' AND wait_event_type = 'Lock';"
    );
    let dump_copies = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{source_db}'
           AND application_name = 'supaneon-sync pg_dump' AND query LIKE 'COPY %' AND state = 'active';"
    );
    poll_until("pg_restore at the gate", Duration::from_secs(60), || {
        count(&pair.target, "postgres", &restore_waits) == 1
    })
    .await;
    poll_until("pg_dump inside COPY", Duration::from_secs(60), || {
        count(&pair.source, "postgres", &dump_copies) == 1
    })
    .await;
}

/// The pid of our child `tool` connected to the cluster on `port` (from /proc; PGPORT is unique per
/// test cluster, so concurrent tests do not confuse each other).
fn child_pid(tool: &str, port: u16) -> Option<u32> {
    let marker = format!("PGPORT={port}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim() != tool || !process_alive(pid) {
                return None;
            }
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
                .then_some(pid)
        })
}

struct Running {
    task:
        tokio::task::JoinHandle<Result<supaneon_sync::pg::pipeline::PipelineReport, PipelineError>>,
    cancel: watch::Sender<bool>,
    dump_pid: u32,
    restore_pid: u32,
}

/// Starts a bulk dump into a gated target database and waits until it is mid-stream.
async fn start_gated(
    pair: &Pair,
    major: u32,
    target_db: &str,
) -> (Running, tokio_postgres::Client) {
    let source = spec(&pair.source.url("postgres", SOURCE_PASSWORD, "bulk"));
    let target = pair.target_db(target_db);
    let gate = close_gate(&pair.target, target_db).await;
    let (cancel, rx) = watch::channel(false);
    let tools = tools_for(major);
    let task = tokio::spawn(async move {
        dump_and_restore(&tools, &source, &target, &schemas(&["public"]), rx).await
    });
    wait_mid_stream(pair, "bulk", target_db).await;
    let dump_pid = child_pid("pg_dump", pair.source.port()).expect("pg_dump runs");
    let restore_pid = child_pid("pg_restore", pair.target.port()).expect("pg_restore runs");
    for pid in [dump_pid, restore_pid] {
        let argv = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
            .replace('\0', " ");
        for secret in pair.secrets() {
            assert!(!argv.contains(secret), "a password in argv: {argv}");
        }
        assert!(
            !argv.contains("127.0.0.1"),
            "connection details stay out of argv: {argv}"
        );
    }
    (
        Running {
            task,
            cancel,
            dump_pid,
            restore_pid,
        },
        gate,
    )
}

async fn open_gate(gate: &tokio_postgres::Client) {
    gate.simple_query(&format!("SELECT pg_advisory_unlock({GATE_LOCK})"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_pg_dump_or_cancelling_stops_both_children() {
    log_buffer();
    for major in test_majors() {
        let pair = Pair::start(major);
        pair.source_db("bulk", BULK_SQL);
        let mut texts = Vec::new();

        // pg_dump killed mid-stream: the pipeline fails and pg_restore is gone.
        let (run, gate) = start_gated(&pair, major, "killed").await;
        send_signal("KILL", run.dump_pid);
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("a killed pg_dump fails the pipeline");
        match &err {
            PipelineError::Dump { status, .. } => {
                assert!(status.contains("signal: 9"), "PG {major}: {status}")
            }
            other => panic!("PG {major}: expected a pg_dump failure, got {other}"),
        }
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore was stopped"
        );
        assert!(!process_alive(run.dump_pid));
        texts.push(err.to_string());
        open_gate(&gate).await;
        drop(run.cancel);

        // pg_restore killed mid-stream: the pipeline fails and pg_dump is stopped too.
        let (run, gate) = start_gated(&pair, major, "restore_killed").await;
        send_signal("KILL", run.restore_pid);
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("a killed pg_restore fails the pipeline");
        match &err {
            PipelineError::Restore { status, .. } => {
                assert!(status.contains("signal: 9"), "PG {major}: {status}")
            }
            other => panic!("PG {major}: expected a pg_restore failure, got {other}"),
        }
        assert!(
            !process_alive(run.dump_pid),
            "PG {major}: pg_dump was stopped"
        );
        texts.push(err.to_string());
        open_gate(&gate).await;
        drop(run.cancel);

        // Cancelled mid-stream: both children are killed and reaped.
        let (run, gate) = start_gated(&pair, major, "cancelled").await;
        run.cancel.send(true).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("cancelled");
        assert!(matches!(err, PipelineError::Cancelled), "PG {major}: {err}");
        assert!(!process_alive(run.dump_pid), "PG {major}: pg_dump gone");
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore gone"
        );
        assert!(!std::path::Path::new(&format!("/proc/{}", run.dump_pid)).exists());
        assert!(!std::path::Path::new(&format!("/proc/{}", run.restore_pid)).exists());
        texts.push(err.to_string());
        open_gate(&gate).await;

        assert_no_secret(&pair.secrets(), &texts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_going_away_mid_dump_fails_clearly() {
    log_buffer();
    for major in test_majors() {
        let mut pair = Pair::start(major);
        pair.source_db("bulk", BULK_SQL);

        let (run, gate) = start_gated(&pair, major, "source_gone").await;
        tokio::task::block_in_place(|| pair.source.stop());
        open_gate(&gate).await;
        let err = tokio::time::timeout(Duration::from_secs(60), run.task)
            .await
            .expect("the pipeline ends")
            .unwrap()
            .expect_err("the source went away");
        let text = err.to_string();
        match &err {
            PipelineError::Dump { stderr_tail, .. } => assert!(
                stderr_tail
                    .iter()
                    .any(|l| l.contains("Dumping the contents of table \"bulk\" failed"))
                    && stderr_tail.iter().any(|l| [
                        "terminating connection",
                        "server closed the connection",
                        "SSL SYSCALL error",
                        "connection to server",
                    ]
                    .iter()
                    .any(|reason| l.contains(reason))),
                "PG {major}: the reason is relayed: {text}"
            ),
            other => panic!("PG {major}: expected a pg_dump failure, got {other}"),
        }
        assert!(
            !process_alive(run.restore_pid),
            "PG {major}: pg_restore was stopped"
        );
        assert!(
            !text.contains("COPY public.bulk"),
            "no SQL in errors: {text}"
        );
        assert_no_secret(&pair.secrets(), &[text]);
    }
}
