//! Sessions and CSRF protection.
//!
//! Sessions live in a private cookie (encrypted and signed with a key derived
//! from EMETERAI_SECRET_KEY) via actix-session: nothing to share between
//! instances. A signed-in session also holds the account's `session_epoch`;
//! bumping the epoch in the database (password reset) ends every session.
//!
//! CSRF: a synchronizer token kept in the session and posted with every
//! form as `csrf_token`, compared in constant time.

use actix_session::Session;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite, time::Duration};
use rand::Rng;

pub const COOKIE_NAME: &str = "emeterai_session";
const CSRF_KEY: &str = "csrf";
const ACCOUNT_KEY: &str = "account";
const EPOCH_KEY: &str = "epoch";
const SID_KEY: &str = "sid";
const PENDING_EMAIL_KEY: &str = "pending_email";

pub fn middleware(
    secret: &[u8],
    secure: bool,
) -> actix_session::SessionMiddleware<CookieSessionStore> {
    actix_session::SessionMiddleware::builder(
        CookieSessionStore::default(),
        Key::derive_from(secret),
    )
    .cookie_name(COOKIE_NAME.to_string())
    .cookie_secure(secure)
    .cookie_http_only(true)
    .cookie_same_site(SameSite::Lax)
    .cookie_content_security(CookieContentSecurity::Private)
    .session_lifecycle(PersistentSession::default().session_ttl(Duration::hours(12)))
    .build()
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(CSRF_KEY) {
        return token;
    }
    let token = random_token();
    let _ = session.insert(CSRF_KEY, &token);
    token
}

/// Whether a posted token matches the session's.
pub fn csrf_valid(session: &Session, posted: &str) -> bool {
    match session.get::<String>(CSRF_KEY) {
        Ok(Some(expected)) => constant_time_eq(expected.as_bytes(), posted.as_bytes()),
        _ => false,
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs in: a fresh session (new cookie, new CSRF token) that remembers the
/// account, its epoch and the id of its server-side record (`sid`, made by
/// `db::sessions::start`), without which it is not signed in.
pub fn sign_in(session: &Session, account_id: &str, epoch: i64, sid: &str) {
    session.renew();
    session.remove(CSRF_KEY);
    let _ = session.insert(ACCOUNT_KEY, account_id);
    let _ = session.insert(EPOCH_KEY, epoch);
    let _ = session.insert(SID_KEY, sid);
}

/// (account id, epoch, server-side session id) of a signed-in browser.
pub fn signed_in(session: &Session) -> Option<(String, i64, String)> {
    let account = session.get::<String>(ACCOUNT_KEY).ok().flatten()?;
    let epoch = session.get::<i64>(EPOCH_KEY).ok().flatten()?;
    let sid = session.get::<String>(SID_KEY).ok().flatten()?;
    Some((account, epoch, sid))
}

pub fn sign_out(session: &Session) {
    session.purge();
}

/// The address the last registration or resend in this browser went to, for
/// the check-your-email page.
pub fn set_pending_email(session: &Session, email: &str) {
    let _ = session.insert(PENDING_EMAIL_KEY, email);
}

/// A register form that came back, kept (encrypted in the cookie, like the
/// rest of the session) so that switching language shows it again.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RegisterDraft {
    pub values: crate::routes::register::RegisterValues,
    pub upload_id: Option<String>,
    pub submission_id: String,
    pub saved: i64,
}

const DRAFT_KEY: &str = "register_draft";
/// Larger drafts (only made by hand) are not kept: the cookie must stay
/// well under the 4 KB browsers allow.
const DRAFT_MAX_BYTES: usize = 1500;
/// A draft older than this is not shown again.
const DRAFT_TTL_SECS: i64 = 3600;

pub fn keep_register_draft(session: &Session, draft: &RegisterDraft) {
    match serde_json::to_string(draft) {
        Ok(json) if json.len() <= DRAFT_MAX_BYTES => {
            let _ = session.insert(DRAFT_KEY, draft);
        }
        _ => {
            session.remove(DRAFT_KEY);
        }
    }
}

pub fn register_draft(session: &Session) -> Option<RegisterDraft> {
    let draft = session.get::<RegisterDraft>(DRAFT_KEY).ok().flatten()?;
    let age = chrono::Utc::now().timestamp() - draft.saved;
    (0..=DRAFT_TTL_SECS).contains(&age).then_some(draft)
}

pub fn forget_register_draft(session: &Session) {
    session.remove(DRAFT_KEY);
}

pub fn pending_email(session: &Session) -> Option<String> {
    session.get::<String>(PENDING_EMAIL_KEY).ok().flatten()
}

/// A single-use token for links (verification, password reset) and the
/// SHA-256 hash that is stored in its place.
pub fn new_link_token() -> (String, String) {
    let token = random_token();
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
    hex(&sha2::Sha256::digest(token.as_bytes()))
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

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
