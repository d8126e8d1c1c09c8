//! The mail outbox: mails are written in the same transaction as what they
//! announce, and delivered by a background worker with retries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::schema::mail_outbox;

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SENT: &str = "sent";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_outbox)]
pub struct NewMail {
    pub id: String,
    pub account_id: Option<String>,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: String,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    /// The pending registration a verification mail belongs to.
    pub registration_id: Option<String>,
}

#[derive(Debug, Clone, Queryable)]
pub struct Mail {
    pub id: String,
    pub account_id: Option<String>,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub locked_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub registration_id: Option<String>,
}

pub fn insert_mail(conn: &mut DbConn, mail: &NewMail) -> QueryResult<()> {
    diesel::insert_into(mail_outbox::table)
        .values(mail)
        .execute(conn)
        .map(|_| ())
}

/// Claims up to `limit` mails that are due, for `lease` (until then no other
/// instance takes them). Each claim is one conditional update, so two
/// instances never send the same mail twice at once.
pub fn claim_due(
    conn: &mut DbConn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Mail>> {
    let candidates: Vec<String> = mail_outbox::table
        .filter(mail_outbox::status.eq(STATUS_PENDING))
        .filter(mail_outbox::next_attempt_at.le(now))
        .filter(
            mail_outbox::locked_until
                .is_null()
                .or(mail_outbox::locked_until.lt(now)),
        )
        .order(mail_outbox::next_attempt_at.asc())
        .select(mail_outbox::id)
        .limit(limit)
        .load(conn)?;
    let mut claimed = Vec::new();
    for id in candidates {
        let updated = diesel::update(
            mail_outbox::table
                .find(&id)
                .filter(mail_outbox::status.eq(STATUS_PENDING))
                .filter(
                    mail_outbox::locked_until
                        .is_null()
                        .or(mail_outbox::locked_until.lt(now)),
                ),
        )
        .set(mail_outbox::locked_until.eq(lease_until))
        .execute(conn)?;
        if updated == 1 {
            claimed.push(mail_outbox::table.find(&id).first(conn)?);
        }
    }
    Ok(claimed)
}

/// Delivered: the bodies (which hold single-use links) are not kept.
pub fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::status.eq(STATUS_SENT),
            mail_outbox::sent_at.eq(now),
            mail_outbox::locked_until.eq(None::<NaiveDateTime>),
            mail_outbox::attempts.eq(mail_outbox::attempts + 1),
            mail_outbox::text_body.eq(""),
            mail_outbox::html_body.eq(""),
            mail_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A failed try: again at `retry_at`, or `failed` for good when `retry_at`
/// is `None`.
pub fn mark_attempt_failed(
    conn: &mut DbConn,
    id: &str,
    error: &str,
    retry_at: Option<NaiveDateTime>,
) -> QueryResult<()> {
    let error: String = error.chars().take(500).collect();
    let status = if retry_at.is_some() {
        STATUS_PENDING
    } else {
        STATUS_FAILED
    };
    let mut query = diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::status.eq(status),
            mail_outbox::attempts.eq(mail_outbox::attempts + 1),
            mail_outbox::locked_until.eq(None::<NaiveDateTime>),
            mail_outbox::last_error.eq(error),
        ))
        .execute(conn)
        .map(|_| ());
    if let (Ok(()), Some(at)) = (&query, retry_at) {
        query = diesel::update(mail_outbox::table.find(id))
            .set(mail_outbox::next_attempt_at.eq(at))
            .execute(conn)
            .map(|_| ());
    }
    query
}

/// Mails to one address, newest first (for tests and the staff timeline).
pub fn mails_to(conn: &mut DbConn, address: &str) -> QueryResult<Vec<Mail>> {
    mail_outbox::table
        .filter(mail_outbox::to_address.eq(address))
        .order(mail_outbox::created_at.desc())
        .load(conn)
}
