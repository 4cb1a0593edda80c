//! Secrets and redaction.
//!
//! Every API key, password and connection URI becomes a [`Secret`] the moment it is read or received.
//! Creating one registers all of its printable forms (raw, percent-encoded, and for a URI the password
//! inside it) with a process-wide registry, so that:
//! - [`redact`] can scrub them from any text before it is logged, and
//! - on GitHub Actions a mask sink (installed by `main`) emits `::add-mask::` for each form before the
//!   value can possibly be printed.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use regex::Regex;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "***";

/// The characters a URI's userinfo must encode (RFC 3986), as most tools encode passwords.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Registered forms shorter than this are not replaced in free text (see [`redact`]).
const MIN_REDACTED_LEN: usize = 4;

/// A secret string. `Debug` and `Display` never show the value; use [`Secret::expose`] only where the
/// value must leave the process through a safe channel (a child's environment, an HTTP header).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` and registers its forms for masking and redaction.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

type MaskSink = Box<dyn Fn(&str) + Send + Sync>;

struct Registry {
    /// Longest first, so that a URI is replaced whole before the password inside it.
    forms: Vec<String>,
    sink: Option<MaskSink>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            forms: Vec::new(),
            sink: None,
        })
    })
}

/// Installs the function that announces new secret forms (GitHub's `::add-mask::`). Forms registered
/// before the sink was installed are announced at once, so no secret is ever skipped.
pub fn set_mask_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    for form in &reg.forms {
        sink(form);
    }
    reg.sink = Some(Box::new(sink));
}

/// Registers a secret value (and its derived forms) without wrapping it.
pub fn register(value: &str) {
    let forms = forms_of(value);
    if forms.is_empty() {
        return;
    }
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if reg.forms.contains(&form) {
            continue;
        }
        if let Some(sink) = &reg.sink {
            sink(&form);
        }
        reg.forms.push(form);
    }
    reg.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// The printable forms of a secret: the value itself, its percent-encoded and percent-decoded forms, and,
/// when it is a connection URI, the password it carries (in each of those forms).
fn forms_of(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![value.to_string()];
    // A value may arrive encoded or not; register it raw, decoded, and re-encoded both strictly and the
    // way URIs usually carry it, so every spelling that could be printed is known.
    let push_variants = |v: &str, forms: &mut Vec<String>| {
        let decoded = percent_decode_str(v).decode_utf8_lossy().into_owned();
        for candidate in [
            v.to_string(),
            utf8_percent_encode(v, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(&decoded, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(&decoded, USERINFO).to_string(),
            decoded,
        ] {
            if !candidate.is_empty() && !forms.contains(&candidate) {
                forms.push(candidate);
            }
        }
    };
    // A URI is printed whole or not at all; what can leak on its own is the password inside it.
    match uri_password(value) {
        Some(password) => push_variants(&password, &mut forms),
        None => push_variants(value, &mut forms),
    }
    // Multi-line values are masked line by line by GitHub; register each line too.
    let lines: Vec<String> = forms
        .iter()
        .filter(|f| f.contains('\n'))
        .flat_map(|f| f.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect();
    for line in lines {
        if !forms.contains(&line) {
            forms.push(line);
        }
    }
    forms
}

fn uri_password(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    url.password().map(str::to_string).filter(|p| !p.is_empty())
}

fn uri_credentials_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // scheme://user:password@  -> scheme://user:***@   (any scheme: postgres, https, …)
        Regex::new(r"(?i)([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]*@").expect("static regex")
    })
}

fn keyword_password_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // libpq key/value form and env-style assignments: password=…, PGPASSWORD=…
        Regex::new(r"(?i)\b(pgpassword|password)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
            .expect("static regex")
    })
}

/// Removes every registered secret, every password inside a URI, and every `password=` value from `text`.
pub fn redact(text: &str) -> String {
    let mut out = {
        let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        // Forms this short would shred ordinary text; they are still masked by GitHub via the sink.
        for form in reg.forms.iter().filter(|f| f.len() >= MIN_REDACTED_LEN) {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        out
    };
    out = uri_credentials_pattern()
        .replace_all(&out, format!("${{1}}:{REDACTED}@").as_str())
        .into_owned();
    keyword_password_pattern()
        .replace_all(&out, format!("${{1}}={REDACTED}").as_str())
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-unit-debug");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(s.expose(), "hunter2-unit-debug");
    }

    #[test]
    fn redacts_registered_values_in_all_forms() {
        let _ = Secret::new("postgresql://postgres.abc:p%40ss%20w%25rd-unit@host:5432/postgres");
        for leaked in [
            "p@ss w%rd-unit",
            "p%40ss%20w%25rd-unit",
            "p%40ss%20w%25rd%2Dunit",
        ] {
            let out = redact(&format!("failed: {leaked} (end)"));
            assert_eq!(out, "failed: *** (end)", "{leaked}");
        }
    }

    #[test]
    fn redacts_unregistered_uri_passwords_and_keywords() {
        let out =
            redact("connect postgres://u:unknownpw@h/db failed; password=abc host=x PGPASSWORD=zz");
        assert_eq!(
            out,
            "connect postgres://u:***@h/db failed; password=*** host=x PGPASSWORD=***"
        );
    }

    #[test]
    fn mask_sink_sees_earlier_and_later_forms() {
        use std::sync::Arc;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let _ = Secret::new("before-sink-secret-unit");
        let s2 = seen.clone();
        set_mask_sink(move |f| s2.lock().unwrap().push(f.to_string()));
        let _ = Secret::new("after-sink-secret-unit");
        let seen = seen.lock().unwrap();
        assert!(seen.iter().any(|f| f == "before-sink-secret-unit"));
        assert!(seen.iter().any(|f| f == "after-sink-secret-unit"));
    }
}
