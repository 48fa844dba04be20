//! Tenant and device identifiers.
//!
//! An identifier is 1–128 characters of `A-Z a-z 0-9 _ - . :` and does not
//! start with `$`. The alphabet already excludes `$`, `/`, `+` and `#`, so an
//! identifier can never add a topic level or an MQTT wildcard to a topic.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest accepted identifier, in characters.
pub const MAX_ID_LEN: usize = 128;
/// The alphabet as a regular expression, for the OpenAPI document (with
/// a length of 1 to [`MAX_ID_LEN`]); a test keeps it equal to the rule
/// [`TenantId::parse`] enforces. `$` is outside the alphabet, so no
/// identifier starts with it.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";

/// Whether `c` is in the identifier alphabet.
fn in_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than [`MAX_ID_LEN`].
    #[error("must be at most {MAX_ID_LEN} characters, got {0}")]
    TooLong(usize),
    /// The string holds a character outside the alphabet.
    #[error("character {0:?} is not allowed (use A-Z a-z 0-9 _ - . :)")]
    BadChar(char),
}

fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(bad) = s.chars().find(|c| !in_alphabet(*c)) {
        return Err(IdError::BadChar(bad));
    }
    // Only ASCII is left, so bytes are characters.
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the identifier, returning its string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A tenant: the unit of isolation between customers of one deployment.
    TenantId
);
identifier!(
    /// A device, unique within its tenant.
    DeviceId
);

// Read from the database, an identifier is validated again: a row holding
// anything else fails to decode instead of reaching a topic.
crate::text_enum::text_column!(TenantId, TenantId::parse, TenantId::as_str);
crate::text_enum::text_column!(DeviceId, DeviceId::parse, DeviceId::as_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_alphabet() {
        let id = "AZaz09_-.:";
        assert_eq!(DeviceId::parse(id).unwrap().as_str(), id);
        assert!(TenantId::parse("a".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn rejects_forbidden_characters() {
        for (input, bad) in [
            ("a/b", '/'),
            ("a+b", '+'),
            ("a#b", '#'),
            ("$SYS", '$'),
            ("a b", ' '),
            ("a\0b", '\0'),
            ("pümpe", 'ü'),
            ("dev\u{1F600}", '\u{1F600}'),
        ] {
            assert_eq!(
                DeviceId::parse(input),
                Err(IdError::BadChar(bad)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_pattern_states_the_alphabet() {
        let pattern = regex::Regex::new(ID_PATTERN).unwrap();
        for c in (0..=0x7f_u8).map(char::from) {
            let one = c.to_string();
            assert_eq!(pattern.is_match(&one), in_alphabet(c), "{c:?}");
            assert_eq!(
                pattern.is_match(&one),
                DeviceId::parse(one).is_ok(),
                "{c:?}"
            );
        }
        assert!(!pattern.is_match(""));
        assert!(pattern.is_match("AZaz09_-.:"));
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
        assert_eq!(
            TenantId::parse("a".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong(MAX_ID_LEN + 1))
        );
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<DeviceId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<DeviceId>("\"no/slash\"").is_err());
    }
}
