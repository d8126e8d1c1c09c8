//! Single-use link tokens (verification, password reset, server-side
//! session ids): 32 random bytes as hex, stored only as their SHA-256.

use rand::Rng;

/// A single-use token for links (verification, password reset) and the
/// SHA-256 hash that is stored in its place.
pub fn new_link_token() -> (String, String) {
    let token = hex::encode(rand::rng().random::<[u8; 32]>());
    let hash = hash_link_token(&token);
    (token, hash)
}

/// The stored hash of a link token as posted or in a URL, or `None` when it
/// is not one (wrong length or characters: a cut-off or mangled link).
pub fn link_token_hash(token: &str) -> Option<String> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hash_link_token(token))
}

pub fn hash_link_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_long_and_stored_hashed() {
        let (token, hash) = new_link_token();
        assert_eq!(token.len(), 64);
        assert_eq!(hash.len(), 64);
        assert_ne!(token, hash);
        assert_eq!(hash_link_token(&token), hash);
    }
}
