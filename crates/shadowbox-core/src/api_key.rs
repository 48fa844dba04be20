//! Tenant API keys: `sbk_<key id, 32 hex>_<secret, base64url of 32 random
//! bytes>`. Only the SHA-256 of the secret is stored; a presented key is
//! looked up by its id and its secret's hash compared in constant time.
//!
//! This is the key format and its checks only: storing and finding keys is
//! `shadowbox_db::api_keys`, and the API's `auth` decides who is calling.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Every tenant key starts with this, so leaked keys are easy to grep for.
const PREFIX: &str = "sbk_";
/// Length of the key id part: a simple (hyphen-less) UUID.
const ID_LEN: usize = 32;

/// A freshly made key. `secret` is the whole bearer token: show it once,
/// store only `hash`.
pub struct NewApiKey {
    /// The key's id (public; names the key in the database).
    pub id: Uuid,
    /// The bearer token, `sbk_<id>_<random>`.
    pub secret: String,
    /// SHA-256 of the random part: what the database stores.
    pub hash: [u8; 32],
}

// Never print the secret.
impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NewApiKey {
    /// Makes a key from 32 bytes of the operating system's RNG.
    pub fn generate() -> Self {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).expect("the operating system's RNG is available");
        let random = URL_SAFE_NO_PAD.encode(random);
        let id = Uuid::new_v4();
        Self {
            id,
            secret: format!("{PREFIX}{}_{random}", id.simple()),
            hash: hash(&random),
        }
    }
}

/// A bearer token that has the shape of a tenant key.
#[derive(Debug, Clone, Copy)]
pub struct PresentedKey<'a> {
    /// The key id it names.
    pub id: Uuid,
    random: &'a str,
}

impl<'a> PresentedKey<'a> {
    /// Splits `sbk_<id>_<random>` into its id and random part; `None` when
    /// `token` is not shaped like a key.
    pub fn parse(token: &'a str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, random) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?.strip_prefix('_')?);
        Some(Self {
            id: Uuid::try_parse(id).ok()?,
            random,
        })
    }

    /// Whether the secret hashes to `stored` (the key's stored hash), in
    /// constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        hash(self.random).as_slice().ct_eq(stored).into()
    }
}

fn hash(random: &str) -> [u8; 32] {
    Sha256::digest(random.as_bytes()).into()
}

/// Whether `presented` equals `expected` (the admin token), in time
/// independent of where they differ (both are hashed first, so their
/// lengths do not leak either).
pub fn tokens_equal(expected: &str, presented: &str) -> bool {
    hash(expected)
        .as_slice()
        .ct_eq(hash(presented).as_slice())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_splits_back_into_its_parts() {
        let key = NewApiKey::generate();
        let presented = PresentedKey::parse(&key.secret).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(presented.matches(&key.hash));
        assert_eq!(URL_SAFE_NO_PAD.decode(presented.random).unwrap().len(), 32);
        assert_ne!(NewApiKey::generate().secret, key.secret);
        let other = NewApiKey::generate();
        assert!(!presented.matches(&other.hash));
    }

    #[test]
    fn malformed_tokens_do_not_split() {
        let key = NewApiKey::generate();
        for bad in [
            "",
            "sbk_",
            &key.secret[1..],
            &key.secret.replacen('_', "-", 1),
            &key.secret[..4 + ID_LEN],
            "sbk_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz_abc",
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(tokens_equal("admin", "admin"));
        assert!(!tokens_equal("admin", "admin "));
        assert!(!tokens_equal("admin", ""));
    }
}
