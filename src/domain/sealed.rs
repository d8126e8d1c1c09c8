//! Envelope encryption of personal data at rest (AES-256-GCM, RustCrypto
//! `aes-gcm`).
//!
//! - A **data key** (256 bits, random) seals the values of one subject (a
//!   KTP photo today). It is stored only wrapped, in `data_keys`; deleting
//!   that row makes what it sealed unreadable (crypto-shredding, complete
//!   for backups once the key-encryption key version that wrapped it is
//!   retired).
//! - A **key-encryption key** (KEK) wraps data keys. Its versions live in a
//!   key ring outside the database (`keys.rs` loads the key file); the
//!   newest wraps new data keys, older ones still unwrap until retired.
//! - A **sealed value** names its data key (`EMS1`, the key id, a random
//!   96-bit nonce, the ciphertext and tag), and the data key's row names
//!   the KEK version. The associated data binds the table, column and row
//!   (`ktp_uploads.data:<id>`), so a value copied to another row or column
//!   does not open.
//! - A **blind index** (HMAC-SHA256 under an index key of its own) finds a
//!   value without storing it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::{Hmac, KeyInit as _, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 4] = b"EMS1";
const NONCE_BYTES: usize = 12;
const KEY_BYTES: usize = 32;

/// Why a sealed value or a wrapped key did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed value")]
    Malformed,
    #[error("data key {0} is not the one this value names")]
    WrongKey(String),
    /// The data key a stored value names is no longer stored: deleted with
    /// what it sealed (a cancelled registration, a deleted account),
    /// perhaps by another request since the value was read.
    #[error("data key {0} is gone (deleted with what it sealed)")]
    KeyGone(String),
    #[error("key-encryption key version {0} is not in the key ring (retired or never known)")]
    UnknownKek(i32),
    #[error("data key {0} does not open: altered, or moved to another row or column")]
    Tampered(String),
    #[error("the key-encryption key's token refused or did not answer: {0}")]
    Token(String),
}

/// A key-encryption key kept in a token (an HSM through PKCS#11,
/// `pkcs11.rs`): AES-256-GCM runs inside it, the key never leaves it.
pub trait TokenKek: Send + Sync {
    /// Encrypts `plain` under the token's key: ciphertext and tag.
    fn encrypt(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, String>;
    /// Decrypts what `encrypt` made; an error when it does not open.
    fn decrypt(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, String>;
}

/// A key-encryption key version: in the key file, or in a token.
enum Kek {
    // Boxed: the expanded AES key schedule is about a kilobyte.
    Local(Box<Aes256Gcm>),
    Token(Box<dyn TokenKek>),
}

/// Finds the token key a `pkcs11:LABEL` version names.
pub type TokenFinder<'a> = dyn FnMut(&str) -> Result<Box<dyn TokenKek>, String> + 'a;

/// How long a data key unwrapped by a token stays in memory: a token
/// unwraps a few thousand keys a second at best, and one sign-up reads its
/// registration several times in a few seconds; five minutes bounds what
/// a memory dump of a running instance holds beyond what it is working on.
pub const TOKEN_CACHE: Duration = Duration::from_secs(300);
const TOKEN_CACHE_MAX: usize = 100_000;

/// Where a sealed value belongs: the table, column and row it was sealed
/// for.
pub fn aad(table: &str, column: &str, row: &str) -> String {
    format!("{table}.{column}:{row}")
}

/// A data key as stored: its id, the KEK version that wrapped it, and the
/// wrapped bytes (nonce, ciphertext and tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub id: String,
    pub kek_version: i32,
    pub wrapped: Vec<u8>,
}

/// An unwrapped data key.
pub struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the place `aad` names, under a fresh random nonce.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any message under 64 GiB");
        let mut out = Vec::with_capacity(5 + self.id.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed by this key for the place `aad` names.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (id, rest) = split_sealed(sealed).ok_or(SealError::Malformed)?;
        if id != self.id {
            return Err(SealError::WrongKey(id.to_string()));
        }
        if rest.len() < NONCE_BYTES + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let nonce: &[u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce");
        self.cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered(self.id.clone()))
    }
}

/// Whether stored bytes are a sealed value (else: written in clear by an
/// earlier version).
pub fn is_sealed(stored: &[u8]) -> bool {
    split_sealed(stored).is_some()
}

/// The data key id a sealed value names.
pub fn sealed_key_id(stored: &[u8]) -> Option<&str> {
    split_sealed(stored).map(|(id, _)| id)
}

fn split_sealed(stored: &[u8]) -> Option<(&str, &[u8])> {
    let rest = stored.strip_prefix(MAGIC)?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if len == 0 || rest.len() < len {
        return None;
    }
    let id = std::str::from_utf8(&rest[..len]).ok()?;
    Some((id, &rest[len..]))
}

/// The key-encryption key versions and the blind-index key, as loaded
/// from the key file (never from the database they protect).
pub struct KeyRing {
    /// Written only when the key file is read again (`refresh`).
    keks: RwLock<BTreeMap<i32, Kek>>,
    index: Vec<u8>,
    /// Data keys a token unwrapped, for `TOKEN_CACHE` (a key-file KEK
    /// unwraps in microseconds and is not cached).
    cache: Mutex<HashMap<String, (Instant, [u8; KEY_BYTES])>>,
    /// Reads the key file again (set by `config.rs`), so that a version
    /// another instance was rotated to opens here without a restart.
    reload: Option<Reloader>,
    /// When a value naming an unknown version last made it read the file.
    last_reload: Mutex<Option<Instant>>,
}

/// Reads the key file again, as at start-up.
pub type Reloader = Box<dyn Fn() -> Result<KeyRing, String> + Send + Sync>;

/// The key file is read again at most this often when a data key names a
/// version this instance does not know (a read of a small file, and token
/// look-ups when versions live in a token).
const RELOAD_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing(versions {:?})", self.versions())
    }
}

/// Why a key file does not load (shown with the setting that names it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("line {0}: expected `kek <version> <64 hex digits>` or `index <64 hex digits>`")]
    Line(usize),
    #[error("key-encryption key version {0} appears twice")]
    Duplicate(i32),
    #[error("no key-encryption key (`kek 1 <64 hex digits>`)")]
    NoKek,
    #[error("no blind-index key (`index <64 hex digits>`)")]
    NoIndex,
    #[error("key-encryption key version {version} (`pkcs11:{label}`): {reason}")]
    Token {
        version: i32,
        label: String,
        reason: String,
    },
}

fn parse_key(hex_text: &str) -> Option<[u8; KEY_BYTES]> {
    let bytes = hex::decode(hex_text).ok()?;
    bytes.try_into().ok()
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; KEY_BYTES]>())
}

impl KeyRing {
    /// A new key file's text: KEK version 1 and an index key, random.
    pub fn new_file_text() -> String {
        format!(
            "# e-Meterai keys. Keep this file off the database host and out of its backups:\n\
             # with a copy of the database it opens every citizen's identity data.\n\
             kek 1 {}\nindex {}\n",
            random_hex(),
            random_hex()
        )
    }

    /// The line that adds the next KEK version to a key file's text.
    pub fn next_version_line(&self) -> (i32, String) {
        let next = self.newest() + 1;
        (next, Self::kek_line(next))
    }

    /// A key file line with a new random KEK as `version`.
    pub fn kek_line(version: i32) -> String {
        format!("kek {version} {}\n", random_hex())
    }

    /// The version after the newest a key file's text names (1 for none).
    pub fn next_version(text: &str) -> i32 {
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next() == Some("kek"))
                    .then(|| parts.next()?.parse::<i32>().ok())
                    .flatten()
            })
            .max()
            .unwrap_or(0)
            + 1
    }

    /// A key file whose KEK versions are all hex keys.
    pub fn parse(text: &str) -> Result<KeyRing, KeyFileError> {
        Self::parse_with(text, &mut |_| {
            Err("no PKCS#11 token is configured (EMETERAI_PKCS11_MODULE)".to_string())
        })
    }

    /// A key file; a version written `kek N pkcs11:LABEL` is the token key
    /// `token` finds under that label.
    pub fn parse_with(text: &str, token: &mut TokenFinder<'_>) -> Result<KeyRing, KeyFileError> {
        let mut keks = BTreeMap::new();
        let mut index = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["kek", version, key] => {
                    let version: i32 = version
                        .parse()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or(KeyFileError::Line(n + 1))?;
                    let kek = match key.strip_prefix("pkcs11:") {
                        Some(label) => {
                            Kek::Token(token(label).map_err(|reason| KeyFileError::Token {
                                version,
                                label: label.to_string(),
                                reason,
                            })?)
                        }
                        None => Kek::Local(Box::new(Aes256Gcm::new(
                            (&parse_key(key).ok_or(KeyFileError::Line(n + 1))?).into(),
                        ))),
                    };
                    if keks.insert(version, kek).is_some() {
                        return Err(KeyFileError::Duplicate(version));
                    }
                }
                ["index", key] => {
                    index = Some(parse_key(key).ok_or(KeyFileError::Line(n + 1))?.to_vec());
                }
                _ => return Err(KeyFileError::Line(n + 1)),
            }
        }
        if keks.is_empty() {
            return Err(KeyFileError::NoKek);
        }
        Ok(KeyRing {
            keks: RwLock::new(keks),
            index: index.ok_or(KeyFileError::NoIndex)?,
            cache: Mutex::new(HashMap::new()),
            reload: None,
            last_reload: Mutex::new(None),
        })
    }

    /// The ring, able to read its key file again (`refresh`).
    pub fn with_reload(mut self, reload: Reloader) -> KeyRing {
        self.reload = Some(reload);
        self
    }

    /// Reads the key file again and takes its KEK versions: a version
    /// added by `keys rotate` (on any host sharing the file) wraps new data
    /// keys from now on, and a retired one stops opening. The blind-index
    /// key cannot change this way (every lookup would miss): a file with
    /// another one is refused and the ring stays as it was. At most once
    /// Whether the versions changed.
    pub fn refresh(&self) -> Result<bool, String> {
        let Some(reload) = &self.reload else {
            return Ok(false);
        };
        let fresh = reload()?;
        if fresh.index != self.index {
            return Err(
                "the key file's blind-index key changed: restart every instance to use it".into(),
            );
        }
        let fresh_keks = fresh.keks.into_inner().expect("a fresh lock");
        let mut keks = self.keks.write().expect("key ring lock");
        let before: Vec<i32> = keks.keys().copied().collect();
        let after: Vec<i32> = fresh_keks.keys().copied().collect();
        if before == after {
            return Ok(false);
        }
        *keks = fresh_keks;
        drop(keks);
        // Keys a retired version unwrapped leave the cache with it.
        self.cache.lock().expect("cache lock").clear();
        tracing::info!(
            ?before,
            ?after,
            "key file read again: key-encryption key versions changed"
        );
        Ok(true)
    }

    /// Whether the newest version is a token's (`pkcs11:`).
    pub fn newest_in_token(&self) -> bool {
        let keks = self.keks.read().expect("key ring lock");
        matches!(keks.values().next_back(), Some(Kek::Token(_)))
    }

    /// The KEK version new data keys are wrapped under.
    pub fn newest(&self) -> i32 {
        let keks = self.keks.read().expect("key ring lock");
        *keks.keys().next_back().expect("a ring has a version")
    }

    pub fn versions(&self) -> Vec<i32> {
        self.keks
            .read()
            .expect("key ring lock")
            .keys()
            .copied()
            .collect()
    }

    /// A fresh data key, and its wrapped form to store. Fails only when a
    /// token holds the newest KEK version and does not answer.
    pub fn new_data_key(&self) -> Result<(WrappedKey, DataKey), SealError> {
        self.new_data_key_named(&uuid::Uuid::new_v4().simple().to_string())
    }

    /// A fresh data key with the id `id` (a key shared by the values of
    /// one period, such as a day of the failure log).
    pub fn new_data_key_named(&self, id: &str) -> Result<(WrappedKey, DataKey), SealError> {
        let id = id.to_string();
        let key: [u8; KEY_BYTES] = rand::random();
        let wrapped = self.wrap(&id, self.newest(), &key)?;
        let data = DataKey {
            id: id.clone(),
            cipher: Aes256Gcm::new((&key).into()),
        };
        Ok((wrapped, data))
    }

    fn wrap(&self, id: &str, version: i32, key: &[u8; KEY_BYTES]) -> Result<WrappedKey, SealError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let aad = format!("data_keys:{id}");
        let keks = self.keks.read().expect("key ring lock");
        let sealed = match keks.get(&version).ok_or(SealError::UnknownKek(version))? {
            Kek::Local(kek) => kek
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: key,
                        aad: aad.as_bytes(),
                    },
                )
                .expect("AES-GCM encrypts a key"),
            Kek::Token(token) => token
                .encrypt(&nonce, aad.as_bytes(), key)
                .map_err(SealError::Token)?,
        };
        let mut wrapped = nonce.to_vec();
        wrapped.extend(sealed);
        Ok(WrappedKey {
            id: id.to_string(),
            kek_version: version,
            wrapped,
        })
    }

    fn unwrap_bytes(&self, stored: &WrappedKey) -> Result<[u8; KEY_BYTES], SealError> {
        match self.unwrap_known(stored) {
            // Another instance may have rotated to a version this one has
            // not read yet: read the key file again, then try once more.
            // At most once per `RELOAD_EVERY`, however many values name it.
            Err(SealError::UnknownKek(_)) if self.reload.is_some() => {
                {
                    let mut last = self.last_reload.lock().expect("reload lock");
                    if last.is_some_and(|at| at.elapsed() < RELOAD_EVERY) {
                        drop(last);
                        return self.unwrap_known(stored);
                    }
                    *last = Some(Instant::now());
                }
                if let Err(reason) = self.refresh() {
                    tracing::error!(%reason, "the key file could not be read again");
                }
                self.unwrap_known(stored)
            }
            other => other,
        }
    }

    fn unwrap_known(&self, stored: &WrappedKey) -> Result<[u8; KEY_BYTES], SealError> {
        let keks = self.keks.read().expect("key ring lock");
        let kek = keks
            .get(&stored.kek_version)
            .ok_or(SealError::UnknownKek(stored.kek_version))?;
        if stored.wrapped.len() < NONCE_BYTES {
            return Err(SealError::Tampered(stored.id.clone()));
        }
        let (nonce, body) = stored.wrapped.split_at(NONCE_BYTES);
        let nonce: &[u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce");
        let aad = format!("data_keys:{}", stored.id);
        let key = match kek {
            Kek::Local(kek) => kek
                .decrypt(
                    nonce.into(),
                    Payload {
                        msg: body,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| SealError::Tampered(stored.id.clone()))?,
            Kek::Token(token) => {
                let cached = {
                    let cache = self.cache.lock().expect("cache lock");
                    cache
                        .get(&stored.id)
                        .filter(|(at, _)| at.elapsed() < TOKEN_CACHE)
                        .map(|(_, key)| *key)
                };
                if let Some(key) = cached {
                    return Ok(key);
                }
                let key: [u8; KEY_BYTES] = token
                    .decrypt(nonce, aad.as_bytes(), body)
                    .map_err(|_| SealError::Tampered(stored.id.clone()))?
                    .try_into()
                    .map_err(|_| SealError::Tampered(stored.id.clone()))?;
                let mut cache = self.cache.lock().expect("cache lock");
                if cache.len() >= TOKEN_CACHE_MAX {
                    cache.retain(|_, (at, _)| at.elapsed() < TOKEN_CACHE);
                    if cache.len() >= TOKEN_CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(stored.id.clone(), (Instant::now(), key));
                return Ok(key);
            }
        };
        key.try_into()
            .map_err(|_| SealError::Tampered(stored.id.clone()))
    }

    /// Unwraps a stored data key.
    pub fn unwrap(&self, stored: &WrappedKey) -> Result<DataKey, SealError> {
        let key = self.unwrap_bytes(stored)?;
        Ok(DataKey {
            id: stored.id.clone(),
            cipher: Aes256Gcm::new((&key).into()),
        })
    }

    /// The same data key wrapped under the newest KEK version (rotation):
    /// `None` when it already is.
    pub fn rewrap(&self, stored: &WrappedKey) -> Result<Option<WrappedKey>, SealError> {
        if stored.kek_version == self.newest() {
            return Ok(None);
        }
        let key = self.unwrap_bytes(stored)?;
        Ok(Some(self.wrap(&stored.id, self.newest(), &key)?))
    }

    /// The blind index of a normalised value: HMAC-SHA256 under the index
    /// key, hex. `purpose` separates the indexes of different fields.
    pub fn blind_index(&self, purpose: &str, normalised: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.index).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::parse(&KeyRing::new_file_text()).unwrap()
    }

    #[test]
    fn a_value_opens_only_in_its_place_under_its_key() {
        let ring = ring();
        let (stored, key) = ring.new_data_key().unwrap();
        let place = aad("ktp_uploads", "data", "u1");
        let sealed = key.seal(&place, b"\xFF\xD8\xFF photo");
        assert!(is_sealed(&sealed));
        assert_eq!(sealed_key_id(&sealed), Some(stored.id.as_str()));
        assert!(!sealed.windows(3).any(|w| w == b"\xFF\xD8\xFF"));
        // A fresh nonce each time.
        assert_ne!(sealed, key.seal(&place, b"\xFF\xD8\xFF photo"));
        let reopened = ring.unwrap(&stored).unwrap();
        assert_eq!(
            reopened.open(&place, &sealed).unwrap(),
            b"\xFF\xD8\xFF photo"
        );
        // Another row, another column, another key, one changed byte.
        assert!(matches!(
            key.open(&aad("ktp_uploads", "data", "u2"), &sealed),
            Err(SealError::Tampered(_))
        ));
        assert!(key.open(&aad("accounts", "nik", "u1"), &sealed).is_err());
        let (_, other) = ring.new_data_key().unwrap();
        assert!(matches!(
            other.open(&place, &sealed),
            Err(SealError::WrongKey(_))
        ));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open(&place, &altered).is_err());
        assert_eq!(key.open(&place, b"plain"), Err(SealError::Malformed));
        assert!(!is_sealed(b"\xFF\xD8\xFF\xE0 a JPEG in clear"));
    }

    #[test]
    fn rotation_rewraps_and_retired_versions_do_not_open() {
        let text = KeyRing::new_file_text();
        let old = KeyRing::parse(&text).unwrap();
        let (stored, key) = old.new_data_key().unwrap();
        assert_eq!(stored.kek_version, 1);
        let sealed = key.seal("t.c:r", b"secret");
        let (version, line) = old.next_version_line();
        assert_eq!(version, 2);
        let rotated = KeyRing::parse(&format!("{text}{line}")).unwrap();
        assert_eq!(rotated.newest(), 2);
        // Old keys still open; rewrapped under version 2 they open too.
        assert!(rotated.unwrap(&stored).is_ok());
        let rewrapped = rotated.rewrap(&stored).unwrap().unwrap();
        assert_eq!(rewrapped.kek_version, 2);
        assert_eq!(rewrapped.id, stored.id);
        assert!(rotated.rewrap(&rewrapped).unwrap().is_none());
        let key2 = rotated.unwrap(&rewrapped).unwrap();
        assert_eq!(key2.open("t.c:r", &sealed).unwrap(), b"secret");
        // Version 1 retired: what only it wrapped no longer opens.
        let retired: String = format!("{text}{line}")
            .lines()
            .filter(|l| !l.starts_with("kek 1 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let retired = KeyRing::parse(&retired).unwrap();
        assert_eq!(
            retired.unwrap(&stored).unwrap_err(),
            SealError::UnknownKek(1)
        );
        assert!(retired.unwrap(&rewrapped).is_ok());
        // A wrapped key moved to another id does not open.
        let moved = WrappedKey {
            id: "other".into(),
            ..rewrapped
        };
        assert!(matches!(
            retired.unwrap(&moved),
            Err(SealError::Tampered(_))
        ));
    }

    #[test]
    fn key_files_are_checked() {
        assert!(matches!(KeyRing::parse(""), Err(KeyFileError::NoKek)));
        let key = "ab".repeat(32);
        assert!(matches!(
            KeyRing::parse(&format!("kek 1 {key}\n")),
            Err(KeyFileError::NoIndex)
        ));
        assert!(matches!(
            KeyRing::parse(&format!("kek 1 {key}\nkek 1 {key}\nindex {key}\n")),
            Err(KeyFileError::Duplicate(1))
        ));
        assert!(matches!(
            KeyRing::parse(&format!("kek 1 abc\nindex {key}\n")),
            Err(KeyFileError::Line(1))
        ));
        let ring = KeyRing::parse(&format!("# c\n\nkek 3 {key}\nindex {key}\n")).unwrap();
        assert_eq!(ring.versions(), [3]);
        // The index is keyed and separates purposes.
        let a = ring.blind_index("nik", "3201011708900003");
        assert_eq!(a, ring.blind_index("nik", "3201011708900003"));
        assert_ne!(a, ring.blind_index("email", "3201011708900003"));
        let other = KeyRing::parse(&format!("kek 1 {key}\nindex {}\n", "cd".repeat(32))).unwrap();
        assert_ne!(a, other.blind_index("nik", "3201011708900003"));
    }
}
