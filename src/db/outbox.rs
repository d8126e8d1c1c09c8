//! The mail outbox: mails are written in the same transaction as what they
//! announce, and delivered by a background worker with retries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::domain::sealed::{self, KeyRing};
use crate::schema::{data_keys, mail_outbox};

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SENT: &str = "sent";
pub const STATUS_FAILED: &str = "failed";

/// A mail as queued. `Mail` below repeats its fields on purpose (see
/// there).
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
    /// Set by `insert_mail`: the address and bodies sealed.
    pub sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
    /// The SHA-256 of the mail's "not me" link token (`db/not_me.rs`).
    pub not_me_hash: Option<String>,
}

/// A mail as read back. Its fields repeat `NewMail`'s on purpose: diesel
/// reads a row in the table's column order (with the delivery columns
/// `NewMail` has no say in) and writes one from an `Insertable` of its own.
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
    pub sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
    pub not_me_hash: Option<String>,
    pub not_me_used_at: Option<NaiveDateTime>,
    /// What the provider last reported (`db/mail_events.rs`).
    pub delivery: Option<String>,
    pub delivery_at: Option<NaiveDateTime>,
}

/// What a waiting mail holds of the citizen, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    to: String,
    text: String,
    html: String,
}

fn aad(id: &str) -> String {
    sealed::aad("mail_outbox", "body", id)
}

/// A mail's address, text and HTML (`clear`, in that order) sealed under
/// a new data key of its own: the key (wrapped, to store) and the sealed
/// envelope.
fn seal_envelope(
    ring: &KeyRing,
    id: &str,
    [to, text, html]: [&str; 3],
) -> QueryResult<(sealed::WrappedKey, Vec<u8>)> {
    let (wrapped, key) = crate::db::identity::new_key(ring)?;
    let envelope = Envelope {
        to: to.to_string(),
        text: text.to_string(),
        html: html.to_string(),
    };
    let plain = serde_json::to_vec(&envelope).expect("a mail serialises");
    Ok((wrapped, key.seal(&aad(id), &plain)))
}

impl Mail {
    /// The address and bodies in clear: opened while the mail waits (a
    /// mail sent or failed for good keeps none).
    pub fn opened(mut self, conn: &mut DbConn, ring: &KeyRing) -> QueryResult<Mail> {
        if let (Some(stored), Some(key_id)) = (self.sealed.take(), &self.data_key_id) {
            let key = super::identity::data_key(conn, ring, key_id)?;
            let plain = key
                .open(&aad(&self.id), &stored)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
            let envelope: Envelope = serde_json::from_slice(&plain).map_err(|_| {
                diesel::result::Error::DeserializationError(Box::new(sealed::SealError::Malformed))
            })?;
            self.to_address = envelope.to;
            self.text_body = envelope.text;
            self.html_body = envelope.html;
        }
        Ok(self)
    }
}

/// Queues a mail: its address, text and HTML sealed under a data key of
/// its own, the address kept in clear only as its blind index.
pub fn insert_mail(conn: &mut DbConn, ring: &KeyRing, mail: &NewMail) -> QueryResult<()> {
    let clear = [&mail.to_address, &mail.text_body, &mail.html_body];
    let (wrapped, envelope) = seal_envelope(ring, &mail.id, clear.map(String::as_str))?;
    let sealed = NewMail {
        to_address: super::identity::email_index(ring, &mail.to_address),
        text_body: String::new(),
        html_body: String::new(),
        sealed: Some(envelope),
        data_key_id: Some(wrapped.id.clone()),
        ..mail.clone()
    };
    super::keys::insert(conn, &wrapped, mail.created_at)?;
    diesel::insert_into(mail_outbox::table)
        .values(&sealed)
        .execute(conn)
        .map(|_| ())
}

/// Seals a waiting mail an earlier version stored in clear, where it is.
pub fn seal_in_place(
    conn: &mut DbConn,
    ring: &KeyRing,
    mail: &Mail,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let clear = [&mail.to_address, &mail.text_body, &mail.html_body];
    let (wrapped, envelope) = seal_envelope(ring, &mail.id, clear.map(String::as_str))?;
    super::keys::insert(conn, &wrapped, now)?;
    diesel::update(
        mail_outbox::table
            .find(&mail.id)
            .filter(mail_outbox::sealed.is_null()),
    )
    .set((
        mail_outbox::to_address.eq(super::identity::email_index(ring, &mail.to_address)),
        mail_outbox::text_body.eq(""),
        mail_outbox::html_body.eq(""),
        mail_outbox::sealed.eq(envelope),
        mail_outbox::data_key_id.eq(&wrapped.id),
    ))
    .execute(conn)
}

/// A mail's sealed part and its data key go (sent, or failed for good).
fn shred(conn: &mut DbConn, id: &str) -> QueryResult<()> {
    let key: Option<Option<String>> = mail_outbox::table
        .find(id)
        .select(mail_outbox::data_key_id)
        .first(conn)
        .optional()?;
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::sealed.eq(None::<Vec<u8>>),
            mail_outbox::data_key_id.eq(None::<String>),
            mail_outbox::text_body.eq(""),
            mail_outbox::html_body.eq(""),
        ))
        .execute(conn)?;
    if let Some(Some(key)) = key {
        diesel::delete(data_keys::table.find(key)).execute(conn)?;
    }
    Ok(())
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

/// Delivered: the bodies (which hold single-use links and the citizen's
/// name) are not kept, and the address only as its blind index (for the
/// staff timeline).
pub fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    shred(conn, id)?;
    diesel::update(mail_outbox::table.find(id))
        .set((
            mail_outbox::status.eq(STATUS_SENT),
            mail_outbox::sent_at.eq(now),
            mail_outbox::locked_until.eq(None::<NaiveDateTime>),
            mail_outbox::attempts.eq(mail_outbox::attempts + 1),
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
    match (&query, retry_at) {
        (Ok(()), Some(at)) => {
            query = diesel::update(mail_outbox::table.find(id))
                .set(mail_outbox::next_attempt_at.eq(at))
                .execute(conn)
                .map(|_| ());
        }
        // Failed for good: what it held goes as for a sent mail.
        (Ok(()), None) => query = shred(conn, id),
        _ => {}
    }
    query
}

/// Mails to one address, newest first (for tests and the staff timeline):
/// under its blind index (rows of earlier versions under the address).
pub fn mails_to(
    conn: &mut DbConn,
    ring: &crate::domain::sealed::KeyRing,
    address: &str,
) -> QueryResult<Vec<Mail>> {
    mail_outbox::table
        .filter(mail_outbox::to_address.eq_any(super::identity::email_keys(ring, address)))
        .order(mail_outbox::created_at.desc())
        .load(conn)
}
