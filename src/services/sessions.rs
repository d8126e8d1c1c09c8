//! Server-side session records, for citizens and staff alike: the cookie
//! carries the record's id, and a session ends when its record is revoked
//! (sign-out, sign out everywhere, a password change), too old or idle.

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use crate::db::{DbConn, sessions};
use crate::error::AppError;

/// Whose sessions, and how long they last.
pub struct Kind {
    /// The record's kind (`db::sessions::KIND_*`).
    pub name: &'static str,
    /// How long a session lasts at most.
    pub hours: i64,
    /// How long it lasts idle.
    pub idle_minutes: i64,
}

/// A citizen's session.
pub const CITIZEN: Kind = Kind {
    name: sessions::KIND_CITIZEN,
    hours: 12,
    idle_minutes: 60,
};

/// A staff member's session: ends sooner when idle (personal data).
pub const STAFF: Kind = Kind {
    name: sessions::KIND_STAFF,
    hours: 8,
    idle_minutes: 20,
};

/// A new session record for `subject`, on the device `client` tells of;
/// its id goes in the cookie.
pub async fn start(
    ctx: &Ctx<'_>,
    kind: &'static Kind,
    subject: &str,
    client: Option<&super::failures::Client>,
    now: NaiveDateTime,
) -> Result<String, AppError> {
    let subject = subject.to_string();
    let device = sessions::Device {
        name: client
            .and_then(|c| c.user_agent.as_deref())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(160).collect()),
        network: client.and_then(|c| c.ip).map(super::failures::truncate_ip),
    };
    ctx.db(move |conn| {
        let lifetime = Duration::hours(kind.hours);
        sessions::start(conn, kind.name, &subject, now, lifetime, &device)
    })
    .await
}

/// The live sessions of `subject`, newest first.
pub async fn live(
    ctx: &Ctx<'_>,
    kind: &'static Kind,
    subject: String,
    now: NaiveDateTime,
) -> Result<Vec<sessions::Live>, AppError> {
    let idle = Duration::minutes(kind.idle_minutes);
    ctx.db(move |conn| sessions::live(conn, kind.name, &subject, now, idle))
        .await
}

/// Ends one of `subject`'s own sessions, named by its id hash.
pub async fn end_own(
    ctx: &Ctx<'_>,
    kind: &'static Kind,
    subject: String,
    id_hash: String,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    ctx.db(move |conn| sessions::revoke_own(conn, kind.name, &subject, &id_hash, now))
        .await
}

/// What `find` reads for `subject`, while the session `sid` is live and
/// is `subject`'s (noting that it was seen); `None` otherwise.
pub async fn subject<T: Send + 'static>(
    ctx: &Ctx<'_>,
    kind: &'static Kind,
    sid: String,
    subject: String,
    now: NaiveDateTime,
    find: impl FnOnce(&mut DbConn, &str) -> diesel::QueryResult<Option<T>> + Send + 'static,
) -> Result<Option<T>, AppError> {
    ctx.db(move |conn| {
        let idle = Duration::minutes(kind.idle_minutes);
        match sessions::check(conn, kind.name, &sid, now, idle)? {
            Some(found) if found == subject => find(conn, &subject),
            _ => Ok(None),
        }
    })
    .await
}

/// Ends one session (its record: a copy of the cookie opens nothing).
pub async fn end(ctx: &Ctx<'_>, sid: String, now: NaiveDateTime) -> Result<(), AppError> {
    ctx.db(move |conn| sessions::revoke(conn, &sid, now)).await
}
