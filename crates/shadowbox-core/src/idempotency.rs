//! Idempotency keys: the `Idempotency-Key` header's form, how long a key
//! replays its first answer, and what makes two requests "the same".
//!
//! A key is 1–255 visible ASCII characters (`!` to `~`, no spaces). Two
//! requests are the same when their method, path and body bytes are: the
//! [`fingerprint`] hashes exactly those, so a retry must resend the body it
//! sent the first time (a client that re-serializes JSON differently sends
//! "another body"). Storing keys and replaying answers is
//! `shadowbox_db::idempotency`; the API's `idempotency` reads the header.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The request header that carries the key.
pub const HEADER: &str = "Idempotency-Key";
/// The response header that marks a replayed answer (`true`).
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// Longest accepted key, in characters.
pub const MAX_KEY_LEN: usize = 255;
/// The key as a regular expression, for the OpenAPI document: the rule of
/// [`IdempotencyKey::parse`], which is the one that is enforced.
pub const KEY_PATTERN: &str = "^[!-~]+$";
/// How long a key replays its first answer; after that it is forgotten and
/// may be used again.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a header value is not a valid key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The value is empty.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than [`MAX_KEY_LEN`].
    #[error("must be at most {MAX_KEY_LEN} characters, got {0}")]
    TooLong(usize),
    /// The value holds a byte that is not visible ASCII.
    #[error("must be visible ASCII (! to ~), found byte 0x{0:02x}")]
    BadByte(u8),
}

/// A valid idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a header value's bytes.
    pub fn parse(value: &[u8]) -> Result<Self, KeyError> {
        if value.is_empty() {
            return Err(KeyError::Empty);
        }
        if let Some(bad) = value.iter().find(|b| !b.is_ascii_graphic()) {
            return Err(KeyError::BadByte(*bad));
        }
        if value.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(value.len()));
        }
        // Only visible ASCII is left.
        Ok(Self(String::from_utf8_lossy(value).into_owned()))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of the method, the path and the body bytes: equal for a retry
/// of the same request, different when any of them differs.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    // Lengths first, so no two (method, path, body) triples hash the same
    // bytes.
    for part in [method.as_bytes(), path.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(IdempotencyKey::parse(b"a").unwrap().as_str(), "a");
        let longest = vec![b'~'; MAX_KEY_LEN];
        assert!(IdempotencyKey::parse(&longest).is_ok());
        assert_eq!(
            IdempotencyKey::parse(&[b'x'; MAX_KEY_LEN + 1]),
            Err(KeyError::TooLong(MAX_KEY_LEN + 1))
        );
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
        assert_eq!(IdempotencyKey::parse(b"a b"), Err(KeyError::BadByte(b' ')));
        assert_eq!(
            IdempotencyKey::parse(b"a\x7f"),
            Err(KeyError::BadByte(0x7f))
        );
        assert_eq!(
            IdempotencyKey::parse("é".as_bytes()),
            Err(KeyError::BadByte(0xc3))
        );
    }

    #[test]
    fn the_pattern_states_the_form() {
        let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
        for byte in 0..=0x7f_u8 {
            let one = char::from(byte).to_string();
            assert_eq!(
                pattern.is_match(&one),
                IdempotencyKey::parse(one.as_bytes()).is_ok(),
                "{byte:#x}"
            );
        }
        assert!(!pattern.is_match(""));
    }

    #[test]
    fn fingerprints() {
        let base = fingerprint("POST", "/a", b"{}");
        assert_eq!(base, fingerprint("POST", "/a", b"{}"));
        assert_ne!(base, fingerprint("PUT", "/a", b"{}"));
        assert_ne!(base, fingerprint("POST", "/b", b"{}"));
        assert_ne!(base, fingerprint("POST", "/a", b"{ }"));
        assert_ne!(
            fingerprint("PO", "ST/a", b""),
            fingerprint("POST", "/a", b"")
        );
    }
}
