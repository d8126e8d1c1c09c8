//! Staff second factor: time-based one-time passwords (TOTP, RFC 6238:
//! HMAC-SHA-1, 6 digits, 30-second steps, the authenticator apps' common
//! setting) through the `totp-rs` crate, and one-time recovery codes.

use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
const ISSUER: &str = "e-Meterai staff";
/// Lower-case RFC 4648 base32 letters without the easily confused ones.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A staff member's TOTP secret (base32, as authenticator apps take it).
#[derive(Clone)]
pub struct TotpSecret(String);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new random 160-bit secret (RFC 4226's recommended length).
    pub fn generate() -> TotpSecret {
        let bytes: [u8; 20] = rand::random();
        match Secret::Raw(bytes.to_vec()).to_encoded() {
            Secret::Encoded(text) => TotpSecret(text),
            Secret::Raw(_) => unreachable!("to_encoded gives an encoded secret"),
        }
    }

    /// A stored secret; `None` when it is not valid base32 of 128+ bits.
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        let secret = TotpSecret(text.trim().to_ascii_uppercase());
        secret.totp("x").map(|_| secret)
    }

    pub fn as_base32(&self) -> &str {
        &self.0
    }

    /// The key in groups of four, as a person types it.
    pub fn grouped(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn totp(&self, account: &str) -> Option<TOTP> {
        let bytes = Secret::Encoded(self.0.clone()).to_bytes().ok()?;
        TOTP::new(
            Algorithm::SHA1,
            6,
            0,
            STEP_SECS,
            bytes,
            Some(ISSUER.to_string()),
            account.to_string(),
        )
        .ok()
    }

    /// The `otpauth://` address an authenticator app reads from a QR code.
    pub fn otpauth_url(&self, account: &str) -> String {
        self.totp(account).map(|t| t.get_url()).unwrap_or_default()
    }

    /// The code for the step that holds `unix_secs` (tests and the CLI).
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.totp("x")
            .map(|t| t.generate(unix_secs))
            .unwrap_or_default()
    }

    /// The step whose code `code` is, within one step either side of
    /// `unix_secs` (clock drift and typing time), or `None`.
    pub fn matching_step(&self, code: &str, unix_secs: u64) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp("x")?;
        let now = unix_secs / STEP_SECS;
        [now.saturating_sub(1), now, now + 1]
            .into_iter()
            .find(|step| totp.check(&code, step * STEP_SECS))
            .map(|step| step as i64)
    }
}

/// Stored secrets that are sealed start with this (older rows hold the
/// secret in clear).
const SEALED_PREFIX: &str = "v1:";
/// AES-GCM's nonce length, in bytes.
const NONCE_BYTES: usize = 12;

/// Seals staff TOTP secrets for the database (AES-256-GCM, a random nonce,
/// the staff id as associated data so a sealed secret cannot be moved to
/// another row): a copy of the database alone does not give the codes.
pub struct SealingKey(aes_gcm::Aes256Gcm);

impl SealingKey {
    pub fn new(key: &[u8; 32]) -> SealingKey {
        use aes_gcm::KeyInit;
        SealingKey(aes_gcm::Aes256Gcm::new(key.into()))
    }

    /// The secret as stored for `owner`: `v1:` and the hex of the nonce and
    /// ciphertext. `None` only if encryption itself fails.
    pub fn seal(&self, secret: &TotpSecret, owner: &str) -> Option<String> {
        use aes_gcm::aead::{Aead, Payload};
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .0
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: secret.0.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .ok()?;
        Some(format!(
            "{SEALED_PREFIX}{}{}",
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// The secret stored for `owner`, sealed or (stored before sealing) in
    /// clear; `None` when it cannot be opened: sealed under another key
    /// (the portal's secret changed), for another owner, or altered.
    pub fn open(&self, stored: &str, owner: &str) -> Option<TotpSecret> {
        use aes_gcm::aead::{Aead, Payload};
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return TotpSecret::from_base32(stored);
        };
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: &[u8; NONCE_BYTES] = nonce.try_into().ok()?;
        let plain = self
            .0
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: owner.as_bytes(),
                },
            )
            .ok()?;
        TotpSecret::from_base32(std::str::from_utf8(&plain).ok()?)
    }

    /// Whether a stored secret is sealed (not an older row in clear).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }
}

/// New recovery codes, as shown once ("abcde-fghjk", 50 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let letters: String = (0..10)
                .map(|_| RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &letters[..5], &letters[5..])
        })
        .collect()
}

/// A recovery code as stored: SHA-256 of the code without separators or
/// case (the codes are random, so no slow hash is needed).
pub fn recovery_code_hash(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if code.len() != 10 {
        return None;
    }
    Some(hex::encode(Sha256::digest(code.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_6238_test_vector_is_met() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890",
        // T = 59 s: 94287082 (8 digits); its last six are the 6-digit code.
        let secret = match Secret::Raw(b"12345678901234567890".to_vec()).to_encoded() {
            Secret::Encoded(text) => TotpSecret::from_base32(&text).unwrap(),
            Secret::Raw(_) => unreachable!(),
        };
        assert_eq!(secret.code_at(59), "287082");
        assert_eq!(secret.matching_step("287 082", 59), Some(1));
        // One step either side, no further.
        assert_eq!(secret.matching_step("287082", 59 + 30), Some(1));
        assert_eq!(secret.matching_step("287082", 59 + 60), None);
        assert_eq!(secret.matching_step("28708", 59), None);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_owner() {
        let key = SealingKey::new(&[7; 32]);
        let secret = TotpSecret::generate();
        let sealed = key.seal(&secret, "staff-1").unwrap();
        assert!(SealingKey::is_sealed(&sealed));
        assert!(!sealed.contains(secret.as_base32()));
        // A new nonce each time.
        assert_ne!(sealed, key.seal(&secret, "staff-1").unwrap());
        let opened = key.open(&sealed, "staff-1").unwrap();
        assert_eq!(opened.as_base32(), secret.as_base32());
        // Another owner, another key, or one changed character: nothing.
        assert!(key.open(&sealed, "staff-2").is_none());
        assert!(SealingKey::new(&[8; 32]).open(&sealed, "staff-1").is_none());
        let last = sealed.chars().last().unwrap();
        let altered = format!(
            "{}{}",
            &sealed[..sealed.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert!(key.open(&altered, "staff-1").is_none());
        assert!(key.open("v1:00", "staff-1").is_none());
        // A row stored before sealing still opens.
        let clear = key.open(secret.as_base32(), "staff-1").unwrap();
        assert_eq!(clear.as_base32(), secret.as_base32());
        assert!(!SealingKey::is_sealed(secret.as_base32()));
    }

    #[test]
    fn secrets_and_recovery_codes_are_random_and_hashable() {
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_ne!(a.as_base32(), b.as_base32());
        assert_eq!(a.as_base32().len(), 32);
        assert!(
            a.otpauth_url("petugas@peruri.test")
                .starts_with("otpauth://totp/")
        );
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(
            recovery_code_hash(&codes[0]),
            recovery_code_hash(&codes[0].to_uppercase().replace('-', " "))
        );
        assert_ne!(recovery_code_hash(&codes[0]), recovery_code_hash(&codes[1]));
        assert_eq!(recovery_code_hash("short"), None);
    }
}
