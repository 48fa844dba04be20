//! Tenant keys found in the database, remembered for a short time so a
//! request does not spend a database round trip on its key.
//!
//! Only what the database said is kept: a key's tenant and the hash of
//! its secret, for [`ApiSettings::key_cache_ttl`](crate::settings::ApiSettings)
//! (`SHADOWBOX_API_KEY_CACHE_TTL`, default 10 s; 0 turns the cache off).
//! Every request still compares its own secret with that hash, so a wrong
//! secret is refused whether the key is cached or not; keys that do not
//! exist are never cached, so they cost a lookup each time, as before. The
//! API never deletes a key; one removed by hand in SQL keeps working in a
//! process for at most the TTL. The cache holds at most
//! [`MAX_KEYS`] keys: when full, it forgets the expired ones, then all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shadowbox_core::TenantId;
use uuid::Uuid;

/// Most keys remembered at once (a tenant usually has a handful).
pub const MAX_KEYS: usize = 10_000;

/// A key as the database stored it.
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    /// The key's tenant.
    pub tenant: TenantId,
    /// SHA-256 of its secret.
    pub secret_hash: Vec<u8>,
}

/// Keys found in the database, each with when it was found.
#[derive(Debug)]
pub(crate) struct KeyCache {
    ttl: Duration,
    keys: Mutex<HashMap<Uuid, (StoredKey, Instant)>>,
}

impl KeyCache {
    /// A cache that keeps keys for `ttl` (none when `ttl` is zero).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Key `id`, when it was found less than the TTL ago.
    pub fn get(&self, id: Uuid) -> Option<StoredKey> {
        let keys = self.keys.lock().expect("no panic while held");
        keys.get(&id)
            .filter(|(_, found)| found.elapsed() < self.ttl)
            .map(|(key, _)| key.clone())
    }

    /// Remembers key `id`, just found in the database.
    pub fn put(&self, id: Uuid, key: StoredKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut keys = self.keys.lock().expect("no panic while held");
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, (_, found)| found.elapsed() < self.ttl);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(id, (key, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str) -> StoredKey {
        StoredKey {
            tenant: TenantId::parse(tenant).unwrap(),
            secret_hash: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_key_is_kept_for_the_ttl_only() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let id = Uuid::new_v4();
        assert!(cache.get(id).is_none());
        cache.put(id, key("acme"));
        assert_eq!(cache.get(id).unwrap().tenant.as_str(), "acme");
        let long_ago = Instant::now() - Duration::from_millis(60);
        cache.keys.lock().unwrap().get_mut(&id).unwrap().1 = long_ago;
        assert!(cache.get(id).is_none(), "expired after the TTL");
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        let id = Uuid::new_v4();
        cache.put(id, key("acme"));
        assert!(cache.get(id).is_none());
    }

    #[test]
    fn a_full_cache_forgets_rather_than_grows() {
        let cache = KeyCache::new(Duration::from_secs(60));
        for _ in 0..=MAX_KEYS {
            cache.put(Uuid::new_v4(), key("acme"));
        }
        assert!(cache.keys.lock().unwrap().len() <= MAX_KEYS);
    }
}
