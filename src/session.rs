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
use subtle::ConstantTimeEq;

pub const COOKIE_NAME: &str = "emeterai_session";
const CSRF_KEY: &str = "csrf";
const ACCOUNT_KEY: &str = "account";
const EPOCH_KEY: &str = "epoch";
const SID_KEY: &str = "sid";
const PENDING_EMAIL_KEY: &str = "pending_email";
const REMIND_NIK_KEY: &str = "remind_nik";

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
    hex::encode(bytes)
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
        Ok(Some(expected)) => expected.as_bytes().ct_eq(posted.as_bytes()).into(),
        _ => false,
    }
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

/// The NIK this browser was just told is already registered: what the
/// "which address did I use?" button mails a reminder about.
pub fn set_remind_nik(session: &Session, nik: &str) {
    let _ = session.insert(REMIND_NIK_KEY, nik);
}

pub fn remind_nik(session: &Session) -> Option<String> {
    session.get::<String>(REMIND_NIK_KEY).ok().flatten()
}

pub fn pending_email(session: &Session) -> Option<String> {
    session.get::<String>(PENDING_EMAIL_KEY).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        // subtle's comparison, as used for CSRF tokens: different lengths
        // are simply unequal.
        assert!(bool::from(b"abc".ct_eq(b"abc")));
        assert!(!bool::from(b"abc".ct_eq(b"abd")));
        assert!(!bool::from(b"abc"[..].ct_eq(&b"abcd"[..])));
    }
}
