//! Neon-shaped identifiers, passwords and timestamps.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::distributions::Alphanumeric;
use rand::seq::SliceRandom;
use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "quiet", "noisy", "bold", "calm", "shiny", "misty", "odd", "proud", "icy", "sweet", "raspy",
    "aged", "little", "soft", "steep", "bitter", "floral", "young", "green", "late",
];
const NOUNS: &[&str] = &[
    "river", "breeze", "meadow", "salad", "hill", "dream", "smoke", "bush", "paper", "sound",
    "king", "wind", "cloud", "sea", "pine", "sunset", "violet", "thunder", "frost", "leaf",
];

fn lower_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| *CHARS.choose(&mut rng).expect("non-empty") as char)
        .collect()
}

fn words() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}",
        ADJECTIVES.choose(&mut rng).expect("non-empty"),
        NOUNS.choose(&mut rng).expect("non-empty")
    )
}

/// `br-<adj>-<noun>-<8 alnum>`.
pub(crate) fn branch_id() -> String {
    format!("br-{}-{}", words(), lower_alnum(8))
}

/// `ep-<adj>-<noun>-<8 alnum>`.
pub(crate) fn endpoint_id() -> String {
    format!("ep-{}-{}", words(), lower_alnum(8))
}

/// The random tail of a branch id, used in physical database names.
pub(crate) fn id_suffix(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// A random UUID v4 in canonical form.
pub(crate) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A role password shaped like Neon's (alphanumeric, 16 chars).
pub(crate) fn password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// RFC3339 with whole seconds and `Z`, as the real API prints timestamps.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC3339 with microseconds; used where ordering must be exact (cursors).
pub(crate) fn ts_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
