//! Server-side session records (citizens' and staff's). The cookie holds
//! only a random id; its SHA-256 is the key here. A session ends when it is
//! revoked (sign-out, "sign out everywhere", password change, staff
//! disabled), idle for longer than its idle limit, or past its lifetime.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::DbConn;
use crate::schema::sessions;

pub const KIND_CITIZEN: &str = "citizen";
pub const KIND_STAFF: &str = "staff";

/// How often the last-seen time is written (at most): a signed-in page
/// costs one read, and a write only once a minute.
const TOUCH_EVERY_SECS: i64 = 60;

/// How a session's device and network are shown to its owner.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// As the browser names itself (its user agent, cut short).
    pub name: Option<String>,
    /// A coarse network hint (the address truncated).
    pub network: Option<String>,
}

/// Starts a session; returns the id for the cookie.
pub fn start(
    conn: &mut DbConn,
    kind: &str,
    subject_id: &str,
    now: NaiveDateTime,
    lifetime: Duration,
    device: &Device,
) -> QueryResult<String> {
    let (id, id_hash) = crate::domain::link_token::new_link_token();
    super::retry_busy(|| {
        diesel::insert_into(sessions::table)
            .values((
                sessions::id_hash.eq(&id_hash),
                sessions::kind.eq(kind),
                sessions::subject_id.eq(subject_id),
                sessions::created_at.eq(now),
                sessions::last_seen_at.eq(now),
                sessions::expires_at.eq(now + lifetime),
                sessions::device.eq(&device.name),
                sessions::network.eq(&device.network),
            ))
            .execute(conn)
    })?;
    Ok(id)
}

/// The subject of a live session of `kind`, noting that it was seen.
pub fn check(
    conn: &mut DbConn,
    kind: &str,
    id: &str,
    now: NaiveDateTime,
    idle: Duration,
) -> QueryResult<Option<String>> {
    let id_hash = crate::domain::link_token::hash_link_token(id);
    let found: Option<(String, NaiveDateTime)> = sessions::table
        .find(&id_hash)
        .filter(sessions::kind.eq(kind))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_seen_at.gt(now - idle))
        .select((sessions::subject_id, sessions::last_seen_at))
        .first(conn)
        .optional()?;
    let Some((subject, last_seen)) = found else {
        return Ok(None);
    };
    if (now - last_seen).num_seconds() >= TOUCH_EVERY_SECS {
        super::retry_busy(|| {
            diesel::update(sessions::table.find(&id_hash))
                .set(sessions::last_seen_at.eq(now))
                .execute(conn)
        })?;
    }
    Ok(Some(subject))
}

/// Ends one session (this browser's sign-out).
pub fn revoke(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    let id_hash = crate::domain::link_token::hash_link_token(id);
    super::retry_busy(|| {
        diesel::update(
            sessions::table
                .find(&id_hash)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
    })
    .map(|_| ())
}

/// Ends every session of a subject. Returns how many were live.
pub fn revoke_all(
    conn: &mut DbConn,
    kind: &str,
    subject_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    super::retry_busy(|| {
        diesel::update(
            sessions::table
                .filter(sessions::kind.eq(kind))
                .filter(sessions::subject_id.eq(subject_id))
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
    })
}

/// Deletes records of sessions that ended before `cutoff`.
pub fn purge(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(cutoff))).execute(conn)
}

/// A live session of a subject, as its owner sees it.
#[derive(Debug, Clone, Queryable)]
pub struct Live {
    pub id_hash: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub device: Option<String>,
    pub network: Option<String>,
}

/// The live sessions of `subject_id`, newest first.
pub fn live(
    conn: &mut DbConn,
    kind: &str,
    subject_id: &str,
    now: NaiveDateTime,
    idle: Duration,
) -> QueryResult<Vec<Live>> {
    sessions::table
        .filter(sessions::kind.eq(kind))
        .filter(sessions::subject_id.eq(subject_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::last_seen_at.gt(now - idle))
        .order(sessions::last_seen_at.desc())
        .select((
            sessions::id_hash,
            sessions::created_at,
            sessions::last_seen_at,
            sessions::device,
            sessions::network,
        ))
        .load(conn)
}

/// Ends the session whose id hash is `id_hash`, if it is `subject_id`'s.
pub fn revoke_own(
    conn: &mut DbConn,
    kind: &str,
    subject_id: &str,
    id_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        sessions::table
            .find(id_hash)
            .filter(sessions::kind.eq(kind))
            .filter(sessions::subject_id.eq(subject_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(Some(now)))
    .execute(conn)?;
    Ok(changed == 1)
}
