//! Encryption at rest for any backend: [`Encrypted`] seals each record's
//! payload (the tokens) with AES-256-GCM (RustCrypto's `aes-gcm`) under a
//! 32-byte key of the user's, with a random nonce per record. The cache
//! key's canonical form and everything the envelope says beside the
//! payload (the generation, the fingerprint, the expiry) are its associated
//! data: a record moved to another key does not open, nor does an old
//! sealed record re-planted with a higher generation or another expiry by
//! someone without the key. A reader of the store without the key sees
//! generations, fingerprints and expiry times, never a token.
//!
//! A record that does not open with the key (another key, or written in
//! the clear) is treated as absent: the token source fetches and replaces
//! it.

use std::sync::Arc;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use auth_core::store::{Envelope, StoreAnswer, StoreError, StoreOp};
use auth_core::CacheKey;
use zeroize::Zeroizing;

/// What starts a sealed payload.
const MAGIC: &[u8] = b"auth-store aes-256-gcm v2\n";
const NONCE_BYTES: usize = 12;

/// A backend whose records are encrypted; see the [module docs](self).
#[derive(Clone)]
pub struct Encrypted<S> {
    inner: S,
    cipher: Arc<Aes256Gcm>,
}

impl<S> std::fmt::Debug for Encrypted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypted").field("key", &"[redacted]").finish_non_exhaustive()
    }
}

impl<S> Encrypted<S> {
    /// Encrypts `inner`'s records with `key` (32 bytes).
    pub fn new(inner: S, key: &[u8; 32]) -> Self {
        let key = Key::<Aes256Gcm>::from(*key);
        Self { inner, cipher: Arc::new(Aes256Gcm::new(&key)) }
    }

    /// Encrypts `inner`'s records with a key given as 32 raw bytes or 64
    /// hex digits (surrounding whitespace ignored), as read from a key file.
    pub fn from_key_bytes(inner: S, bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::new("the store key must be 32 bytes, or 64 hex digits");
        let key: Zeroizing<[u8; 32]> = match bytes.len() {
            32 => Zeroizing::new(bytes.try_into().map_err(|_| bad())?),
            _ => {
                let text = std::str::from_utf8(bytes).map_err(|_| bad())?.trim();
                if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                let mut key = Zeroizing::new([0u8; 32]);
                for (i, byte) in key.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
                }
                key
            }
        };
        Ok(Self::new(inner, &key))
    }

    /// The backend underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What a sealed payload is bound to: the cache key and the envelope's
    /// readable fields.
    fn associated(key: &CacheKey, envelope: &Envelope) -> Vec<u8> {
        format!(
            "{}\ngeneration={}\nfingerprint={}\nexpires_at_unix_ms={}",
            key.canonical(),
            envelope.generation,
            envelope.fingerprint,
            envelope.expires_at_unix_ms
        )
        .into_bytes()
    }

    /// `op` with its payload sealed (writes); others unchanged.
    fn seal(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreOp, StoreError> {
        let envelope = match op {
            StoreOp::Write { envelope, .. } | StoreOp::CompareAndSet { envelope, .. } => envelope,
            _ => return Ok(op.clone()),
        };
        let nonce = Nonce::generate();
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: &envelope.payload, aad: &Self::associated(key, envelope) })
            .map_err(|_| StoreError::new("could not encrypt the record"))?;
        let mut payload = Zeroizing::new(Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len()));
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&sealed);
        let envelope = Envelope { payload, ..envelope.clone() };
        Ok(match op {
            StoreOp::CompareAndSet { expected, .. } => StoreOp::CompareAndSet { envelope, expected: *expected },
            StoreOp::Write { release, .. } => StoreOp::Write { envelope, release: *release },
            _ => op.clone(),
        })
    }

    /// `answer` with a read record opened (absent when it does not open).
    fn open(&self, key: &CacheKey, answer: StoreAnswer) -> StoreAnswer {
        let StoreAnswer::Envelope(Some(envelope)) = answer else { return answer };
        let aad = Self::associated(key, &envelope);
        let opened = envelope.payload.strip_prefix(MAGIC).filter(|rest| rest.len() > NONCE_BYTES).and_then(|rest| {
            let (nonce, sealed) = rest.split_at(NONCE_BYTES);
            let nonce = Nonce::try_from(nonce).ok()?;
            self.cipher.decrypt(&nonce, Payload { msg: sealed, aad: &aad }).ok()
        });
        match opened {
            Some(plain) => StoreAnswer::Envelope(Some(Envelope { payload: Zeroizing::new(plain), ..envelope })),
            None => {
                tracing::debug!(target: "auth_store", "a stored record does not open with this key: ignored");
                StoreAnswer::Envelope(None)
            }
        }
    }
}

#[cfg(feature = "tower")]
#[async_trait::async_trait]
impl<S: auth_core::store::TokenStore> auth_core::store::TokenStore for Encrypted<S> {
    async fn connect(&self) -> Result<(), StoreError> {
        self.inner.connect().await
    }

    fn longest_answer(&self) -> Option<std::time::Duration> {
        self.inner.longest_answer()
    }

    async fn execute(
        &self,
        key: &CacheKey,
        now: std::time::SystemTime,
        op: &StoreOp,
    ) -> Result<StoreAnswer, StoreError> {
        let op = self.seal(key, op)?;
        Ok(self.open(key, self.inner.execute(key, now, &op).await?))
    }
}

#[cfg(feature = "blocking")]
impl<S: auth_core::store::BlockingTokenStore> auth_core::store::BlockingTokenStore for Encrypted<S> {
    fn connect(&self) -> Result<(), StoreError> {
        self.inner.connect()
    }

    fn longest_answer(&self) -> Option<std::time::Duration> {
        self.inner.longest_answer()
    }

    fn execute(&self, key: &CacheKey, now: std::time::SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        let op = self.seal(key, op)?;
        Ok(self.open(key, self.inner.execute(key, now, &op)?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use auth_core::store::{MemoryStore, Record};
    use auth_core::SourceConfig;

    use super::*;

    pub(super) fn key(url: &str) -> CacheKey {
        SourceConfig::builder(url, "id").client_secret("s").build().unwrap().cache_key().clone()
    }

    /// Runs an operation through the wrapper on a memory store.
    fn run(store: &Encrypted<MemoryStore>, key: &CacheKey, op: &StoreOp) -> StoreAnswer {
        let op = store.seal(key, op).unwrap();
        store.open(key, store.inner().apply(key, SystemTime::now(), &op))
    }

    #[test]
    fn records_are_unreadable_without_the_key() {
        let memory = MemoryStore::new();
        let key = key("https://a.example/token");
        let store = Encrypted::new(memory.clone(), &[7u8; 32]);
        let record = Record::new(&key, "secret-access-token-1", SystemTime::now() + Duration::from_secs(3600));
        let write = StoreOp::Write { envelope: Envelope::seal(&record, 1), release: None };
        assert!(matches!(run(&store, &key, &write), StoreAnswer::Written(true)));
        // What the backend holds: no token.
        let StoreAnswer::Envelope(Some(raw)) = memory.apply(&key, SystemTime::now(), &StoreOp::Read) else { panic!() };
        assert!(raw.payload.starts_with(MAGIC));
        assert!(!String::from_utf8_lossy(&raw.payload).contains("secret-access-token-1"));
        assert!(raw.open(&key).is_err(), "the sealed payload is not a record");
        // With the key: the record.
        let StoreAnswer::Envelope(Some(opened)) = run(&store, &key, &StoreOp::Read) else { panic!() };
        assert_eq!(opened.open(&key).unwrap().access_token_value(), Some("secret-access-token-1"));
        // Another key, or the record moved to another cache key: absent.
        let other = Encrypted::new(memory.clone(), &[8u8; 32]);
        assert!(matches!(run(&other, &key, &StoreOp::Read), StoreAnswer::Envelope(None)));
        let moved = self::tests::key("https://b.example/token");
        let seal = store.seal(&key, &write).unwrap();
        memory.apply(&moved, SystemTime::now(), &seal);
        assert!(matches!(run(&store, &moved, &StoreOp::Read), StoreAnswer::Envelope(None)));
        assert!(!format!("{store:?}").contains('7'));
    }

    #[test]
    fn an_old_sealed_record_replanted_with_a_higher_generation_does_not_open() {
        let memory = MemoryStore::new();
        let key = key("https://a.example/token");
        let store = Encrypted::new(memory.clone(), &[7u8; 32]);
        let expires = SystemTime::now() + Duration::from_secs(3600);
        let old = Record::new(&key, "revoked-token", expires);
        run(&store, &key, &StoreOp::Write { envelope: Envelope::seal(&old, 1), release: None });
        let StoreAnswer::Envelope(Some(sealed_old)) = memory.apply(&key, SystemTime::now(), &StoreOp::Read) else {
            panic!()
        };
        let new = Record::new(&key, "current-token", expires);
        run(&store, &key, &StoreOp::Write { envelope: Envelope::seal(&new, 2), release: None });
        // Someone without the key puts the old sealed payload back, above the current generation.
        let replanted = Envelope { generation: 3, ..sealed_old.clone() };
        assert!(matches!(
            memory.apply(&key, SystemTime::now(), &StoreOp::Write { envelope: replanted, release: None }),
            StoreAnswer::Written(true)
        ));
        assert!(matches!(run(&store, &key, &StoreOp::Read), StoreAnswer::Envelope(None)), "not taken up");
        // Nor with a longer life.
        let stretched = Envelope { generation: 4, expires_at_unix_ms: u64::MAX, ..sealed_old };
        memory.apply(&key, SystemTime::now(), &StoreOp::Write { envelope: stretched, release: None });
        assert!(matches!(run(&store, &key, &StoreOp::Read), StoreAnswer::Envelope(None)));
    }

    #[test]
    fn keys_come_as_raw_bytes_or_hex() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
        assert!(Encrypted::from_key_bytes(MemoryStore::new(), hex.as_bytes()).is_ok());
        assert!(Encrypted::from_key_bytes(MemoryStore::new(), &[1u8; 32]).is_ok());
        for bad in [&b"short"[..], &[0u8; 31], b"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"] {
            let error = Encrypted::from_key_bytes(MemoryStore::new(), bad).unwrap_err();
            assert!(error.message.contains("32 bytes"), "{error}");
        }
    }
}
