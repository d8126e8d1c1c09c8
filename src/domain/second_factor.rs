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
