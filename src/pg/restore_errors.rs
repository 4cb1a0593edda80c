//! Reading pg_restore's stderr: which errors happened, on which object, and whether they matter.
//!
//! Without `--exit-on-error`, pg_restore carries on after a failed statement and prints, with
//! `--verbose`:
//!
//! ```text
//! pg_restore: creating TABLE "public.t"
//! pg_restore: from TOC entry 216; 1259 16425 TABLE t su
//! pg_restore: error: could not execute query: ERROR:  permission denied for schema public
//! LINE 1: CREATE TABLE public.t (
//! Command was: CREATE TABLE public.t (
//!     id integer NOT NULL
//! );
//! pg_restore: warning: errors ignored on restore: 1
//! ```
//!
//! Each error becomes a [`RestoreError`] naming the object (from the `creating …` / `processing data
//! for table …` line, or else the TOC entry). SQL text (`Command was:`, `LINE n:` and everything up to
//! the next `pg_restore:` line) is never kept: it can hold data. A short allow-list marks errors that
//! are expected when restoring a Supabase schema into a database we prepared ([`is_benign`]);
//! everything else fails the backup.

/// One error pg_restore reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    /// The server's message, e.g. `role "authenticated" does not exist`.
    pub message: String,
    /// The object being restored, e.g. `POLICY "public.t p"` or `TABLE t`.
    pub object: Option<String>,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{object}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Errors split by whether they matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub benign: Vec<RestoreError>,
    pub fatal: Vec<RestoreError>,
    /// From `errors ignored on restore: N`, when pg_restore printed it.
    pub ignored_count: Option<u64>,
}

impl RestoreOutcome {
    /// Errors pg_restore counted but we could not read, reported as one fatal error (so an
    /// unexpected output format can never turn a failure into a success).
    fn reconcile(&mut self) {
        let parsed = (self.benign.len() + self.fatal.len()) as u64;
        if let Some(counted) = self.ignored_count {
            if counted > parsed {
                self.fatal.push(RestoreError {
                    message: format!(
                        "pg_restore counted {counted} errors but only {parsed} could be read from its output"
                    ),
                    object: None,
                });
            }
        }
    }
}

/// Errors known to be harmless when restoring into a target that was prepared for the dump. A grant
/// to a role the target does not have (a Supabase platform role) is on the list: the object and its
/// other grants are restored, and the run reports it.
pub fn is_benign(error: &RestoreError) -> bool {
    let m = error.message.as_str();
    let acl = error
        .object
        .as_deref()
        .is_some_and(|o| o.starts_with("ACL ") || o.starts_with("DEFAULT ACL "));
    (acl && m.starts_with("role \"") && m.ends_with("\" does not exist"))
        || m == "schema \"public\" already exists"
        || (m.starts_with("extension \"") && m.ends_with("\" already exists"))
        || m.starts_with("must be owner of extension ")
}

/// A line-by-line parser, fed while pg_restore runs.
#[derive(Debug, Default)]
pub struct RestoreErrorParser {
    /// `pg_restore --jobs`: workers interleave their `creating …` lines, so the `from TOC entry` line
    /// that the failing worker prints right before its error names the object more reliably.
    parallel: bool,
    /// The object from the latest `creating …` / `processing data …` line.
    current_object: Option<String>,
    /// The object from the latest `from TOC entry` line (used when no `creating` line named it).
    toc_object: Option<String>,
    outcome: RestoreOutcome,
}

impl RestoreErrorParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// For the output of `pg_restore --jobs`.
    pub fn parallel() -> Self {
        RestoreErrorParser {
            parallel: true,
            ..Self::default()
        }
    }

    /// Feeds one stderr line; for an error line, returns whether it is benign.
    pub fn push_line(&mut self, line: &str) -> Option<bool> {
        let Some(rest) = line.strip_prefix("pg_restore: ") else {
            // SQL text, LINE/DETAIL continuation of an error: deliberately not kept.
            return None;
        };
        if let Some(object) = rest.strip_prefix("creating ") {
            self.current_object = Some(object.trim().to_string());
            self.toc_object = None;
        } else if let Some(table) = rest.strip_prefix("processing data for table ") {
            self.current_object = Some(format!("TABLE DATA {}", table.trim()));
            self.toc_object = None;
        } else if let Some(entry) = rest.strip_prefix("from TOC entry ") {
            self.toc_object = toc_entry_object(entry);
        } else if let Some(count) = rest.strip_prefix("warning: errors ignored on restore: ") {
            self.outcome.ignored_count = count.trim().parse().ok();
        } else if let Some(error) = rest.strip_prefix("error: ") {
            let message = server_message(error);
            let object = if self.parallel {
                // Taken, so that a later error of another worker cannot inherit it.
                self.toc_object
                    .take()
                    .or_else(|| self.current_object.clone())
            } else {
                self.current_object
                    .clone()
                    .or_else(|| self.toc_object.clone())
            };
            let error = RestoreError { message, object };
            let benign = is_benign(&error);
            if benign {
                self.outcome.benign.push(error);
            } else {
                self.outcome.fatal.push(error);
            }
            return Some(benign);
        }
        None
    }

    /// Whether any error so far is fatal.
    pub fn has_fatal(&self) -> bool {
        !self.outcome.fatal.is_empty()
    }

    pub fn finish(mut self) -> RestoreOutcome {
        self.outcome.reconcile();
        self.outcome
    }
}

/// Parses a whole stderr text at once.
pub fn classify(stderr: &str) -> RestoreOutcome {
    let mut parser = RestoreErrorParser::new();
    for line in stderr.lines() {
        parser.push_line(line);
    }
    parser.finish()
}

/// `could not execute query: ERROR:  x` → `x`; other errors (`COPY failed for table "t": ERROR:  x`)
/// keep their context with the severity label removed.
fn server_message(error: &str) -> String {
    let error = error
        .strip_prefix("could not execute query: ")
        .unwrap_or(error);
    let mut out = error.trim().to_string();
    for label in ["ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "] {
        out = out.replacen(label, "", 1);
    }
    out
}

/// `216; 1259 16425 TABLE t su` → `TABLE t` (the owner, last, is dropped).
fn toc_entry_object(entry: &str) -> Option<String> {
    let (_, described) = entry.split_once("; ")?;
    let mut words: Vec<&str> = described.split(' ').skip(2).collect();
    if words.len() > 1 {
        words.pop();
    }
    let object = words.join(" ");
    (!object.is_empty()).then_some(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pg_restore 15 --verbose, a Neon-shaped target: the usual benign error only.
    const BENIGN_ONLY: &str = "pg_restore: connecting to database for restore
pg_restore: creating SCHEMA \"public\"
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 5; 2615 2200 SCHEMA public pg_database_owner
pg_restore: error: could not execute query: ERROR:  schema \"public\" already exists
Command was: CREATE SCHEMA public;


pg_restore: creating TABLE \"public.t\"
pg_restore: warning: errors ignored on restore: 1
";

    /// pg_restore 15 --verbose into a database the user may not write to.
    const FATAL_SAMPLE: &str = "pg_restore: connecting to database for restore
pg_restore: creating SCHEMA \"app\"
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 7; 2615 16433 SCHEMA app su
pg_restore: error: could not execute query: ERROR:  permission denied for database tgt3
Command was: CREATE SCHEMA app;


pg_restore: creating TABLE \"app.My.Tab\"
pg_restore: from TOC entry 217; 1259 16434 TABLE My.Tab su
pg_restore: error: could not execute query: ERROR:  schema \"app\" does not exist
LINE 1: CREATE TABLE app.\"My.Tab\" (
                     ^
Command was: CREATE TABLE app.\"My.Tab\" (
    id integer
);


pg_restore: warning: errors ignored on restore: 2
";

    /// pg_restore 17 into a 15 server: an error outside any TOC entry.
    const INITIALIZING: &str = "pg_restore: connecting to database for restore
pg_restore: while INITIALIZING:
pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter \"transaction_timeout\"
Command was: SET transaction_timeout = 0;
pg_restore: warning: errors ignored on restore: 1
";

    #[test]
    fn schema_public_already_exists_is_benign() {
        let outcome = classify(BENIGN_ONLY);
        assert!(outcome.fatal.is_empty(), "{outcome:?}");
        assert_eq!(
            outcome.benign,
            vec![RestoreError {
                message: "schema \"public\" already exists".into(),
                object: Some("SCHEMA \"public\"".into()),
            }]
        );
        assert_eq!(outcome.ignored_count, Some(1));
    }

    #[test]
    fn other_errors_are_fatal_and_name_their_object() {
        let outcome = classify(FATAL_SAMPLE);
        assert!(outcome.benign.is_empty());
        assert_eq!(outcome.fatal.len(), 2, "{outcome:?}");
        assert_eq!(outcome.fatal[0].object.as_deref(), Some("SCHEMA \"app\""));
        assert_eq!(outcome.fatal[1].message, "schema \"app\" does not exist");
        assert_eq!(
            outcome.fatal[1].object.as_deref(),
            Some("TABLE \"app.My.Tab\"")
        );
    }

    #[test]
    fn sql_text_never_reaches_an_error() {
        for sample in [BENIGN_ONLY, FATAL_SAMPLE, INITIALIZING] {
            let outcome = classify(sample);
            for e in outcome.benign.iter().chain(&outcome.fatal) {
                let text = e.to_string();
                assert!(!text.contains("CREATE"), "{text}");
                assert!(!text.contains("SET transaction_timeout"), "{text}");
            }
        }
    }

    #[test]
    fn an_error_outside_the_toc_has_no_object() {
        let outcome = classify(INITIALIZING);
        assert_eq!(outcome.fatal.len(), 1);
        assert_eq!(outcome.fatal[0].object, None);
        assert!(outcome.fatal[0].message.contains("transaction_timeout"));
    }

    #[test]
    fn the_toc_entry_names_the_object_without_a_creating_line() {
        let outcome = classify(
            "pg_restore: from TOC entry 3383; 0 16425 TABLE DATA t su
pg_restore: error: COPY failed for table \"t\": ERROR:  role \"authenticated\" does not exist
pg_restore: warning: errors ignored on restore: 1
",
        );
        assert_eq!(outcome.fatal.len(), 1);
        assert_eq!(outcome.fatal[0].object.as_deref(), Some("TABLE DATA t"));
        assert_eq!(
            outcome.fatal[0].message,
            "COPY failed for table \"t\": role \"authenticated\" does not exist"
        );
    }

    #[test]
    fn extension_ownership_errors_are_benign() {
        let outcome = classify(
            "pg_restore: creating COMMENT \"EXTENSION pg_trgm\"
pg_restore: error: could not execute query: ERROR:  must be owner of extension pg_trgm
Command was: COMMENT ON EXTENSION pg_trgm IS 'text similarity';
pg_restore: creating EXTENSION \"pgcrypto\"
pg_restore: error: could not execute query: ERROR:  extension \"pgcrypto\" already exists
Command was: CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
pg_restore: warning: errors ignored on restore: 2
",
        );
        assert!(outcome.fatal.is_empty(), "{outcome:?}");
        assert_eq!(outcome.benign.len(), 2);
    }

    /// pg_restore 15 --jobs=2: worker lines interleave; the TOC entry before an error names its object.
    #[test]
    fn parallel_output_names_the_object_of_the_toc_entry() {
        let mut parser = RestoreErrorParser::parallel();
        for line in "pg_restore: launching item 3261 INDEX t_payload
pg_restore: launching item 3270 POLICY t t_owner
pg_restore: creating INDEX \"public.t_payload\"
pg_restore: creating POLICY \"public.t t_owner\"
pg_restore: from TOC entry 3270; 3256 16480 POLICY t t_owner su
pg_restore: error: could not execute query: ERROR:  role \"owner\" does not exist
Command was: CREATE POLICY t_owner ON public.t TO owner USING (true);
pg_restore: finished item 3261 INDEX t_payload
pg_restore: error: could not execute query: ERROR:  out of shared memory
pg_restore: warning: errors ignored on restore: 2
"
        .lines()
        {
            parser.push_line(line);
        }
        let outcome = parser.finish();
        assert_eq!(outcome.fatal.len(), 2, "{outcome:?}");
        assert_eq!(outcome.fatal[0].object.as_deref(), Some("POLICY t t_owner"));
        assert_eq!(outcome.fatal[0].message, "role \"owner\" does not exist");
        // No TOC entry of its own: the latest object, as in a serial restore.
        assert_eq!(
            outcome.fatal[1].object.as_deref(),
            Some("POLICY \"public.t t_owner\"")
        );
    }

    #[test]
    fn a_grant_to_a_missing_role_is_benign_elsewhere_it_is_not() {
        let missing = "role \"dashboard_user\" does not exist".to_string();
        for object in [
            "ACL auth.TABLE users",
            "DEFAULT ACL public.DEFAULT PRIVILEGES FOR TABLES",
        ] {
            assert!(is_benign(&RestoreError {
                message: missing.clone(),
                object: Some(object.into()),
            }));
        }
        assert!(!is_benign(&RestoreError {
            message: missing,
            object: Some("POLICY \"public.t p\"".into()),
        }));
        assert!(!is_benign(&RestoreError {
            message: "permission denied for table users".into(),
            object: Some("ACL auth.TABLE users".into()),
        }));
    }

    #[test]
    fn uncounted_errors_become_fatal() {
        let outcome = classify("pg_restore: warning: errors ignored on restore: 3\n");
        assert_eq!(outcome.fatal.len(), 1);
        assert!(outcome.fatal[0].message.contains("counted 3 errors"));
    }
}
