//! What citizens ask of their own data (`account_requests`): corrections
//! of name or birth date that staff decide (with a new KTP photo), and the
//! changes citizens make themselves (phone, email), recorded as answered
//! at once, so staff can show when each request came and was answered.
//! A new email address waits for its link in `email_changes`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::DbConn;
use super::accounts::Account;
use super::identity::{self, Identity};
use crate::domain::sealed::{self, KeyRing};
use crate::schema::{account_requests, accounts, email_changes, ktp_uploads};

pub const KIND_CORRECTION: &str = "correction";
pub const KIND_PHONE: &str = "phone_change";
pub const KIND_EMAIL: &str = "email_change";

pub const STATUS_OPEN: &str = "open";
pub const STATUS_DONE: &str = "done";
pub const STATUS_REJECTED: &str = "rejected";

/// A correction asked for (sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub full_name: String,
    pub birth_date: String,
    pub note: String,
}

#[derive(Debug, Clone, Queryable)]
pub struct RequestRow {
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub status: String,
    pub sealed: Option<Vec<u8>>,
    pub photo: Option<Vec<u8>>,
    pub photo_type: Option<String>,
    pub created_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub decided_by: Option<String>,
    pub decision: Option<String>,
}

fn aad(column: &str, row: &str) -> String {
    sealed::aad("account_requests", column, row)
}

/// The account's data key (a fresh one for an account an earlier version
/// stored in clear: it is sealed from here on).
fn account_key(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    now: NaiveDateTime,
) -> QueryResult<sealed::DataKey> {
    match &account.data_key_id {
        Some(id) => identity::data_key(conn, ring, id),
        None => {
            let (wrapped, key) = identity::new_key(ring)?;
            super::keys::insert(conn, &wrapped, now)?;
            diesel::update(accounts::table.find(&account.id))
                .set(accounts::data_key_id.eq(&wrapped.id))
                .execute(conn)?;
            Ok(key)
        }
    }
}

/// Writes the account's identity sealed again (after a correction), with
/// the email's blind index; the NIK column is left as it is.
fn reseal(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    changed: &Identity,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let key = account_key(conn, ring, account, now)?;
    let sealed = identity::seal(ring, &key, "accounts", &account.id, changed);
    diesel::update(accounts::table.find(&account.id))
        .set(identity::SealedAccount::of(&sealed, &key))
        .execute(conn)
        .map(|_| ())
}

/// A request answered at once (a change the citizen made).
fn record_done(
    conn: &mut DbConn,
    account_id: &str,
    kind: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(account_requests::table)
        .values((
            account_requests::id.eq(uuid::Uuid::new_v4().to_string()),
            account_requests::account_id.eq(account_id),
            account_requests::kind.eq(kind),
            account_requests::status.eq(STATUS_DONE),
            account_requests::created_at.eq(now),
            account_requests::due_at.eq(now),
            account_requests::decided_at.eq(Some(now)),
            account_requests::decided_by.eq(Some("self-service")),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A new phone number, in one transaction with its record.
pub fn change_phone(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    phone: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let changed = Identity {
                phone: phone.to_string(),
                ..account.identity()
            };
            reseal(conn, ring, account, &changed, now)?;
            record_done(conn, &account.id, KIND_PHONE, now)
        })
    })
}

/// A new address waiting for its link, with the mail that carries the
/// link (to the new address), in one transaction; older links for the
/// account stop working.
#[allow(clippy::too_many_arguments)]
pub fn start_email_change(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    new_email: &str,
    token_hash: &str,
    expires_at: NaiveDateTime,
    mail: &super::outbox::NewMail,
    now: NaiveDateTime,
) -> QueryResult<()> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let key = account_key(conn, ring, account, now)?;
            diesel::update(
                email_changes::table
                    .filter(email_changes::account_id.eq(&account.id))
                    .filter(email_changes::used_at.is_null()),
            )
            .set(email_changes::used_at.eq(Some(now)))
            .execute(conn)?;
            diesel::insert_into(email_changes::table)
                .values((
                    email_changes::token_hash.eq(token_hash),
                    email_changes::account_id.eq(&account.id),
                    email_changes::sealed.eq(key.seal(
                        &sealed::aad("email_changes", "email", token_hash),
                        new_email.as_bytes(),
                    )),
                    email_changes::created_at.eq(now),
                    email_changes::expires_at.eq(expires_at),
                ))
                .execute(conn)?;
            super::outbox::insert_mail(conn, ring, mail)
        })
    })
}

/// The account and new address a working email-change link stands for.
pub fn find_email_change(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<(Account, String)>> {
    let found: Option<(String, Vec<u8>)> = email_changes::table
        .find(token_hash)
        .filter(email_changes::used_at.is_null())
        .filter(email_changes::expires_at.gt(now))
        .select((email_changes::account_id, email_changes::sealed))
        .first(conn)
        .optional()?;
    let Some((account_id, stored)) = found else {
        return Ok(None);
    };
    let Some((account, plain)) = opened_change(conn, ring, &account_id, token_hash, &stored, now)?
    else {
        return Ok(None);
    };
    let email = String::from_utf8(plain)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Some((account, email)))
}

/// The account an email change belongs to, with the new address opened
/// (as bytes) under the account's key.
fn opened_change(
    conn: &mut DbConn,
    ring: &KeyRing,
    account_id: &str,
    token_hash: &str,
    stored: &[u8],
    now: NaiveDateTime,
) -> QueryResult<Option<(Account, Vec<u8>)>> {
    let Some(account) = super::accounts::find_by_id(conn, ring, account_id)? else {
        return Ok(None);
    };
    let key = account_key(conn, ring, &account, now)?;
    let plain = key
        .open(&sealed::aad("email_changes", "email", token_hash), stored)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Some((account, plain)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChanged {
    /// Changed: the old address (to be told).
    Done { old: String },
    /// Another account took the address meanwhile.
    Taken,
    /// The link does not work (any more).
    Gone,
}

/// Confirms an email change through its link, in one transaction: the
/// account's address is the new one (the UNIQUE index holds against
/// another account taking it meanwhile), the link is used, the change
/// recorded, and `tell_old` (the mail to the old address) queued.
pub fn confirm_email_change(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    tell_old: impl Fn(&Account) -> QueryResult<super::outbox::NewMail>,
    now: NaiveDateTime,
) -> QueryResult<EmailChanged> {
    let outcome = super::retry_busy(|| {
        conn.transaction(|conn| {
            let used = diesel::update(
                email_changes::table
                    .find(token_hash)
                    .filter(email_changes::used_at.is_null())
                    .filter(email_changes::expires_at.gt(now)),
            )
            .set(email_changes::used_at.eq(Some(now)))
            .execute(conn)?;
            if used != 1 {
                return Ok(EmailChanged::Gone);
            }
            let Some((account, new_email)) = find_email_change_any(conn, ring, token_hash, now)?
            else {
                return Ok(EmailChanged::Gone);
            };
            if super::accounts::email_taken(conn, ring, &new_email)? {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            let changed = Identity {
                email: new_email.clone(),
                ..account.identity()
            };
            reseal(conn, ring, &account, &changed, now)?;
            record_done(conn, &account.id, KIND_EMAIL, now)?;
            super::outbox::insert_mail(conn, ring, &tell_old(&account)?)?;
            Ok(EmailChanged::Done { old: account.email })
        })
    });
    match outcome {
        Err(diesel::result::Error::RollbackTransaction)
        | Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(EmailChanged::Taken),
        other => other,
    }
}

/// `find_email_change` for a link just marked used.
fn find_email_change_any(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<(Account, String)>> {
    let (account_id, stored): (String, Vec<u8>) = email_changes::table
        .find(token_hash)
        .select((email_changes::account_id, email_changes::sealed))
        .first(conn)?;
    let opened = opened_change(conn, ring, &account_id, token_hash, &stored, now)?;
    Ok(opened.and_then(|(account, plain)| Some((account, String::from_utf8(plain).ok()?))))
}

/// A correction of name or birth date with its new KTP photo, for staff
/// to decide by `due_at`.
pub fn request_correction(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    correction: &Correction,
    photo: (&str, &[u8]),
    due_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let key = account_key(conn, ring, account, now)?;
            let plain = serde_json::to_vec(correction).expect("a correction serialises");
            diesel::insert_into(account_requests::table)
                .values((
                    account_requests::id.eq(&id),
                    account_requests::account_id.eq(&account.id),
                    account_requests::kind.eq(KIND_CORRECTION),
                    account_requests::status.eq(STATUS_OPEN),
                    account_requests::sealed.eq(Some(key.seal(&aad("sealed", &id), &plain))),
                    account_requests::photo.eq(Some(key.seal(&aad("photo", &id), photo.1))),
                    account_requests::photo_type.eq(Some(photo.0)),
                    account_requests::created_at.eq(now),
                    account_requests::due_at.eq(due_at),
                ))
                .execute(conn)
                .map(|_| ())
        })
    })?;
    Ok(id)
}

/// The requests staff see: open ones by their deadline (overdue first),
/// then the newest answered ones.
pub fn queue(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<RequestRow>> {
    let mut rows: Vec<RequestRow> = account_requests::table
        .filter(account_requests::status.eq(STATUS_OPEN))
        .order(account_requests::due_at.asc())
        .limit(limit)
        .load(conn)?;
    rows.extend(
        account_requests::table
            .filter(account_requests::status.ne(STATUS_OPEN))
            .order(account_requests::decided_at.desc())
            .limit(limit)
            .load::<RequestRow>(conn)?,
    );
    Ok(rows)
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<RequestRow>> {
    account_requests::table.find(id).first(conn).optional()
}

/// A correction's contents and photo, opened.
pub fn open_correction(
    conn: &mut DbConn,
    ring: &KeyRing,
    request: &RequestRow,
    account: &Account,
    now: NaiveDateTime,
) -> QueryResult<(Correction, Vec<u8>)> {
    let key = account_key(conn, ring, account, now)?;
    let bad = |e: sealed::SealError| diesel::result::Error::DeserializationError(Box::new(e));
    let plain = key
        .open(
            &aad("sealed", &request.id),
            request.sealed.as_deref().unwrap_or_default(),
        )
        .map_err(bad)?;
    let correction =
        serde_json::from_slice(&plain).map_err(|_| bad(sealed::SealError::Malformed))?;
    let photo = key
        .open(
            &aad("photo", &request.id),
            request.photo.as_deref().unwrap_or_default(),
        )
        .map_err(bad)?;
    Ok((correction, photo))
}

/// Decides an open correction, in one transaction with `mail`: approved,
/// the account's name and birth date are the corrected ones and its KTP
/// photo the new one; rejected, nothing changes but the request. False
/// when it was decided meanwhile.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    conn: &mut DbConn,
    ring: &KeyRing,
    request: &RequestRow,
    account: &Account,
    approve: bool,
    staff: &str,
    decision: &str,
    mail: &super::outbox::NewMail,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let (correction, photo) = open_correction(conn, ring, request, account, now)?;
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let changed = diesel::update(
                account_requests::table
                    .find(&request.id)
                    .filter(account_requests::status.eq(STATUS_OPEN)),
            )
            .set((
                account_requests::status.eq(if approve {
                    STATUS_DONE
                } else {
                    STATUS_REJECTED
                }),
                account_requests::decided_at.eq(Some(now)),
                account_requests::decided_by.eq(Some(staff)),
                account_requests::decision.eq(Some(decision)),
            ))
            .execute(conn)?;
            if changed != 1 {
                return Ok(false);
            }
            if approve {
                let corrected = Identity {
                    full_name: correction.full_name.clone(),
                    birth_date: correction.birth_date.clone(),
                    ..account.identity()
                };
                reseal(conn, ring, account, &corrected, now)?;
                let (wrapped, data) =
                    super::keys::seal_photo(ring, &account.ktp_upload_id, &photo)?;
                let old_key: Option<Option<String>> = ktp_uploads::table
                    .find(&account.ktp_upload_id)
                    .select(ktp_uploads::data_key_id)
                    .first(conn)
                    .optional()?;
                super::keys::insert(conn, &wrapped, now)?;
                diesel::update(ktp_uploads::table.find(&account.ktp_upload_id))
                    .set((
                        ktp_uploads::data.eq(&data),
                        ktp_uploads::data_key_id.eq(&wrapped.id),
                        ktp_uploads::size_bytes.eq(photo.len() as i64),
                        ktp_uploads::content_type
                            .eq(request.photo_type.as_deref().unwrap_or("image/jpeg")),
                    ))
                    .execute(conn)?;
                if let Some(Some(old)) = old_key {
                    diesel::delete(crate::schema::data_keys::table.find(old)).execute(conn)?;
                }
            }
            // The request keeps no photo once decided.
            diesel::update(account_requests::table.find(&request.id))
                .set(account_requests::photo.eq(None::<Vec<u8>>))
                .execute(conn)?;
            super::outbox::insert_mail(conn, ring, mail)?;
            Ok(true)
        })
    })
}
