//! "Not me" links: every mail about a registration or an account carries a
//! second link whose token is stored (as its SHA-256) on the mail's outbox
//! row. Its recipient cancels a pending registration they never made, or
//! starts the account-security path for a verified account.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::accounts::Account;
use super::registrations::Registration;
use crate::domain::sealed::KeyRing;
use crate::schema::{
    accounts, data_keys, ktp_uploads, mail_outbox, registration_submissions, registrations,
};

/// The mail a "not me" link came in.
#[derive(Debug, Clone, Queryable)]
pub struct NotMeMail {
    pub id: String,
    pub kind: String,
    pub registration_id: Option<String>,
    pub account_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

pub fn find(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<NotMeMail>> {
    mail_outbox::table
        .filter(mail_outbox::not_me_hash.eq(token_hash))
        .select((
            mail_outbox::id,
            mail_outbox::kind,
            mail_outbox::registration_id,
            mail_outbox::account_id,
            mail_outbox::created_at,
            mail_outbox::not_me_used_at,
        ))
        .first(conn)
        .optional()
}

/// What a "not me" link is about now.
#[derive(Debug, Clone)]
pub enum Target {
    /// A registration still waiting for its password.
    Registration(Box<Registration>),
    /// A verified account (the registration was finished, or the mail was
    /// about the account).
    Account(Box<Account>),
    /// Nothing is left (cancelled, expired and purged, or deleted).
    Gone,
}

pub fn target(conn: &mut DbConn, ring: &KeyRing, mail: &NotMeMail) -> QueryResult<Target> {
    let mut account_id = mail.account_id.clone();
    if let Some(id) = &mail.registration_id {
        let registration = registrations::table
            .find(id)
            .first::<Registration>(conn)
            .optional()?;
        match registration {
            Some(r) if r.completed_at.is_none() => {
                return Ok(Target::Registration(Box::new(r.opened(conn, ring)?)));
            }
            Some(r) => account_id = account_id.or(r.account_id),
            None => {}
        }
    }
    match account_id {
        Some(id) => Ok(super::accounts::find_by_id(conn, ring, &id)?
            .map_or(Target::Gone, |a| Target::Account(Box::new(a)))),
        None => Ok(Target::Gone),
    }
}

/// Marks the link used; false when it already was (a second click, or two
/// at once: one conditional update decides).
pub fn mark_used(conn: &mut DbConn, mail_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        mail_outbox::table
            .find(mail_id)
            .filter(mail_outbox::not_me_used_at.is_null()),
    )
    .set(mail_outbox::not_me_used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// Cancels a pending registration through the link of `mail_id`, in one
/// transaction: the link is marked used, the registration deleted (its
/// verification links go with it, so they stop working, and its address
/// and NIK are free at once), its photo and both data keys deleted
/// (nothing of it stays readable, in the database or a later backup once
/// the KEK version is retired), its mails still waiting dropped. False
/// when the link was used meanwhile or the registration was finished.
pub fn cancel_registration(
    conn: &mut DbConn,
    mail_id: &str,
    registration: &Registration,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    with_link(conn, mail_id, now, |conn| {
        let deleted = diesel::delete(
            registrations::table
                .find(&registration.id)
                .filter(registrations::completed_at.is_null()),
        )
        .execute(conn)?;
        if deleted != 1 {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        diesel::delete(
            registration_submissions::table
                .filter(registration_submissions::registration_id.eq(&registration.id)),
        )
        .execute(conn)?;
        let photo_owned: i64 = accounts::table
            .filter(accounts::ktp_upload_id.eq(&registration.ktp_upload_id))
            .count()
            .get_result(conn)?;
        let mut keys: Vec<String> = registration.data_key_id.iter().cloned().collect();
        if photo_owned == 0 {
            let photo_key: Option<Option<String>> = ktp_uploads::table
                .find(&registration.ktp_upload_id)
                .select(ktp_uploads::data_key_id)
                .first(conn)
                .optional()?;
            keys.extend(photo_key.flatten());
            diesel::delete(ktp_uploads::table.find(&registration.ktp_upload_id)).execute(conn)?;
        }
        // Mails for it not sent yet go unsent: their keys are shredded
        // and they are marked failed.
        let waiting: Vec<(String, Option<String>)> = mail_outbox::table
            .filter(mail_outbox::registration_id.eq(&registration.id))
            .filter(mail_outbox::status.eq(super::outbox::STATUS_PENDING))
            .select((mail_outbox::id, mail_outbox::data_key_id))
            .load(conn)?;
        for (id, key) in waiting {
            diesel::update(mail_outbox::table.find(&id))
                .set((
                    mail_outbox::status.eq(super::outbox::STATUS_FAILED),
                    mail_outbox::last_error.eq("cancelled: not me"),
                    mail_outbox::sealed.eq(None::<Vec<u8>>),
                    mail_outbox::data_key_id.eq(None::<String>),
                ))
                .execute(conn)?;
            keys.extend(key);
        }
        diesel::delete(data_keys::table.filter(data_keys::id.eq_any(&keys))).execute(conn)?;
        Ok(true)
    })
}

/// The account-security path through the link of `mail_id`, in one
/// transaction: the link is marked used, every session of the account
/// ends (its epoch moves on and its sessions are revoked). False when the
/// link was used meanwhile.
pub fn secure_account(
    conn: &mut DbConn,
    mail_id: &str,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    with_link(conn, mail_id, now, |conn| {
        diesel::update(accounts::table.find(account_id))
            .set(accounts::session_epoch.eq(accounts::session_epoch + 1))
            .execute(conn)?;
        super::sessions::revoke_all(conn, super::sessions::KIND_CITIZEN, account_id, now)?;
        Ok(true)
    })
}

/// Runs `step` in one transaction with marking the link of `mail_id`
/// used: false when it was used meanwhile, or when `step` says no or rolls
/// back (`RollbackTransaction`: nothing it wrote stays).
fn with_link(
    conn: &mut DbConn,
    mail_id: &str,
    now: NaiveDateTime,
    mut step: impl FnMut(&mut DbConn) -> QueryResult<bool>,
) -> QueryResult<bool> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            if !mark_used(conn, mail_id, now)? {
                return Ok(false);
            }
            step(conn)
        })
        .or_else(|e| match e {
            diesel::result::Error::RollbackTransaction => Ok(false),
            e => Err(e),
        })
    })
}
