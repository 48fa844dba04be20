//! Tenant API keys: `sbk_<key id, 32 hex>_<secret, base64url of 32 random
//! bytes>`. Only the SHA-256 of the secret is stored; a presented key is
//! looked up by its id and its secret's hash compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use shadowbox_core::TenantId;
use shadowbox_db::DbError;
use shadowbox_db::api_keys::{find_api_key, insert_api_key};
use sqlx::PgPool;
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

/// Makes a key from 32 bytes of the operating system's RNG.
pub fn new_api_key() -> NewApiKey {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the operating system's RNG is available");
    let random = URL_SAFE_NO_PAD.encode(random);
    let id = Uuid::new_v4();
    NewApiKey {
        id,
        secret: format!("{PREFIX}{}_{random}", id.simple()),
        hash: hash(&random),
    }
}

/// Makes a key for `tenant` and stores its hash. Fails with
/// [`DbError::TenantNotFound`] when the tenant does not exist.
pub async fn create_api_key(pool: &PgPool, tenant: &TenantId) -> Result<NewApiKey, DbError> {
    let key = new_api_key();
    insert_api_key(pool, key.id, tenant, &key.hash).await?;
    Ok(key)
}

/// The tenant whose key `token` is, or `None` when it is not a valid key.
pub(crate) async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<TenantId>, DbError> {
    let Some((id, random)) = split(token) else {
        return Ok(None);
    };
    let Some((tenant, stored)) = find_api_key(pool, id).await? else {
        return Ok(None);
    };
    if !bool::from(hash(random).as_slice().ct_eq(&stored)) {
        return Ok(None);
    }
    Ok(TenantId::parse(tenant).ok())
}

/// Splits `sbk_<id>_<random>` into its id and random part.
fn split(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, random) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?.strip_prefix('_')?);
    Some((Uuid::try_parse(id).ok()?, random))
}

fn hash(random: &str) -> [u8; 32] {
    Sha256::digest(random.as_bytes()).into()
}

/// Whether `presented` equals `expected`, in time independent of where they
/// differ (both are hashed first, so their lengths do not leak either).
pub(crate) fn tokens_equal(expected: &str, presented: &str) -> bool {
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
        let key = new_api_key();
        let (id, random) = split(&key.secret).unwrap();
        assert_eq!(id, key.id);
        assert_eq!(hash(random), key.hash);
        assert_eq!(URL_SAFE_NO_PAD.decode(random).unwrap().len(), 32);
        assert_ne!(new_api_key().secret, key.secret);
    }

    #[test]
    fn malformed_tokens_do_not_split() {
        let key = new_api_key();
        for bad in [
            "",
            "sbk_",
            &key.secret[1..],
            &key.secret.replacen('_', "-", 1),
            &key.secret[..4 + ID_LEN],
            "sbk_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz_abc",
        ] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(tokens_equal("admin", "admin"));
        assert!(!tokens_equal("admin", "admin "));
        assert!(!tokens_equal("admin", ""));
    }
}
