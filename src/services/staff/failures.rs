//! What support staff read and do in the failure log: pages of it (and
//! the export), counts by day, one failure's story (the citizen's other
//! failures, registrations, account and mails); note, resolve, send the
//! verification link again, open the KTP photo.

use chrono::NaiveDateTime;

use crate::db::DbConn;
use crate::db::accounts::Account;
use crate::db::failures::FailureRow;
use crate::db::outbox::Mail;
use crate::db::registrations::Registration;
use crate::db::staff::{self as staff_db, DayCount, Note};
use crate::domain::sealed::KeyRing;
use crate::error::AppError;
use crate::i18n::Lang;
use crate::services::Ctx;

pub use crate::db::staff::{Cursor, FailureFilter};
pub use crate::services::verification::ResendOutcome;

/// The most related failures read for one story.
const RELATED_MAX: i64 = 200;

/// Longest note kept, in characters.
const NOTE_MAX_CHARS: usize = 2000;

/// Everything the detail page tells about one failure.
pub struct Story {
    pub failure: FailureRow,
    pub notes: Vec<Note>,
    /// Failures under the same email or NIK (or the account's address),
    /// newest first, the failure itself among them.
    pub related: Vec<FailureRow>,
    /// The citizen's account: by this email, or else by this NIK.
    pub account: Option<Account>,
    /// Mails to the account's (or failure's) address and to every address
    /// a registration of this citizen waited under.
    pub mails: Vec<Mail>,
    pub registrations: Vec<Registration>,
}

impl Story {
    /// The registrations still waiting for their password.
    pub fn waiting(&self) -> impl Iterator<Item = &Registration> {
        self.registrations
            .iter()
            .filter(|r| r.completed_at.is_none())
    }

    /// The newest of them: whose details count where there is no account.
    pub fn newest_waiting(&self) -> Option<&Registration> {
        self.waiting().max_by_key(|r| r.updated_at)
    }
}

/// Up to `limit` failures matching `filter`, newest first, after
/// `cursor` (the last row of the page before).
pub async fn page(
    ctx: &Ctx<'_>,
    filter: FailureFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<FailureRow>, AppError> {
    let keys = ctx.keys.clone();
    ctx.db(move |conn| staff_db::page(conn, &keys, &filter, cursor.as_ref(), limit))
        .await
}

/// Failures per day and reason, from `from` up to `to` (UTC).
pub async fn counts_by_day(
    ctx: &Ctx<'_>,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<DayCount>, AppError> {
    ctx.db(move |conn| staff_db::counts_by_day(conn, from, to))
        .await
}

/// One failure by its reference code.
pub async fn find(ctx: &Ctx<'_>, reference: &str) -> Result<Option<FailureRow>, AppError> {
    let reference = reference.to_string();
    let keys = ctx.keys.clone();
    ctx.db(move |conn| crate::services::failures::find(conn, &keys, &reference))
        .await
}

/// The citizen's account as support finds it: by the failure's email, or
/// else by its NIK (an attempt under another address).
fn citizen_account(
    conn: &mut DbConn,
    keys: &KeyRing,
    email: Option<&str>,
    nik_hash: Option<&str>,
) -> diesel::QueryResult<Option<Account>> {
    if let Some(email) = email
        && let Some(account) = crate::db::accounts::find_by_email(conn, keys, email)?
    {
        return Ok(Some(account));
    }
    match nik_hash {
        Some(hash) => crate::db::accounts::find_by_nik_hash(conn, keys, hash),
        None => Ok(None),
    }
}

/// The story of the failure `reference`, or `None` when there is none.
pub async fn story(ctx: &Ctx<'_>, reference: &str) -> Result<Option<Story>, AppError> {
    let lookup = reference.to_string();
    let keys = ctx.keys.clone();
    ctx.db(move |conn| -> Result<_, AppError> {
        let Some(failure) = crate::services::failures::find(conn, &keys, &lookup)? else {
            return Ok(None);
        };
        let notes = staff_db::notes(conn, &lookup)?;
        let (email, nik_hash) = (failure.email.as_deref(), failure.nik_hash.as_deref());
        let mut related = staff_db::related(conn, &keys, email, nik_hash, RELATED_MAX)?;
        let account = citizen_account(conn, &keys, email, nik_hash)?;
        if let Some(account) = &account
            && Some(account.email.as_str()) != email
        {
            related.extend(staff_db::related(
                conn,
                &keys,
                Some(&account.email),
                None,
                RELATED_MAX,
            )?);
            related
                .sort_by(|a, b| (b.occurred_at, &b.reference).cmp(&(a.occurred_at, &a.reference)));
            related.dedup_by(|a, b| a.reference == b.reference);
        }
        // Without an email or NIK there is no wider story: the failure
        // itself.
        if !related.iter().any(|r| r.reference == failure.reference) {
            related.push(failure.clone());
        }
        let mail_address = account
            .as_ref()
            .map(|a| a.email.clone())
            .or(failure.email.clone());
        let mut registrations =
            crate::db::registrations::find_related(conn, &keys, email, nik_hash)?;
        if let Some(account) = &account {
            registrations.extend(crate::db::registrations::find_related(
                conn,
                &keys,
                Some(&account.email),
                None,
            )?);
            registrations.sort_by(|a, b| a.id.cmp(&b.id));
            registrations.dedup_by(|a, b| a.id == b.id);
        }
        let mut mails = match &mail_address {
            Some(email) => crate::db::outbox::mails_to(conn, &keys, email)?,
            None => Vec::new(),
        };
        // Mails to the other addresses a NIK waited under.
        for registration in &registrations {
            if Some(&registration.email) != mail_address.as_ref() {
                mails.extend(crate::db::outbox::mails_to(
                    conn,
                    &keys,
                    &registration.email,
                )?);
            }
        }
        Ok(Some(Story {
            failure,
            notes,
            related,
            account,
            mails,
            registrations,
        }))
    })
    .await
}

/// Adds a note (trimmed, at most `NOTE_MAX_CHARS`) to a failure; an empty
/// one is not added (`false`).
pub async fn add_note(
    ctx: &Ctx<'_>,
    reference: &str,
    staff_email: &str,
    note: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let note: String = note.trim().chars().take(NOTE_MAX_CHARS).collect();
    if note.is_empty() {
        return Ok(false);
    }
    let (r, e) = (reference.to_string(), staff_email.to_string());
    ctx.db(move |conn| staff_db::add_note(conn, &r, &e, &note, now))
        .await?;
    Ok(true)
}

/// Marks a failure resolved by this staff member.
pub async fn resolve(
    ctx: &Ctx<'_>,
    reference: &str,
    staff_email: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let (r, e) = (reference.to_string(), staff_email.to_string());
    ctx.db(move |conn| staff_db::resolve(conn, &r, &e, now))
        .await?;
    Ok(())
}

/// Sends the verification link again for the citizen of `failure` (in
/// Indonesian): to the account's address as the detail page finds it, or
/// with no account, to the registration waiting under the failure's email,
/// or else the newest one waiting under its NIK. `NothingWaiting` when
/// there is none.
pub async fn resend_link(
    ctx: &Ctx<'_>,
    failure: &FailureRow,
    now: NaiveDateTime,
) -> Result<ResendOutcome, AppError> {
    let (email, hash) = (failure.email.clone(), failure.nik_hash.clone());
    let keys = ctx.keys.clone();
    let address = ctx
        .db(move |conn| -> Result<Option<String>, AppError> {
            if let Some(account) = citizen_account(conn, &keys, email.as_deref(), hash.as_deref())?
            {
                return Ok(Some(account.email));
            }
            let waiting = crate::db::registrations::find_related(
                conn,
                &keys,
                email.as_deref(),
                hash.as_deref(),
            )?;
            Ok(waiting
                .into_iter()
                .filter(|r| r.completed_at.is_none())
                .max_by_key(|r| r.updated_at)
                .map(|r| r.email))
        })
        .await?;
    match address
        .as_deref()
        .and_then(|e| crate::domain::Email::parse(e).ok())
    {
        Some(email) => crate::services::verification::resend(ctx, &email, Lang::Id, now).await,
        None => Ok(ResendOutcome::NothingWaiting),
    }
}

/// The KTP photo `upload` (content type, bytes), when it belongs to the
/// citizen failure `reference` is about: an account or registration under
/// the same email or NIK.
pub async fn photo(
    ctx: &Ctx<'_>,
    reference: &str,
    upload: &str,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    if uuid::Uuid::parse_str(upload).is_err() {
        return Ok(None);
    }
    let (lookup, id) = (reference.to_string(), upload.to_string());
    let keys = ctx.keys.clone();
    ctx.db(move |conn| -> Result<_, AppError> {
        let Some(failure) = crate::services::failures::find(conn, &keys, &lookup)? else {
            return Ok(None);
        };
        let owners = crate::db::accounts::upload_owners(conn, &keys, &id)?;
        let related = owners.iter().any(|(email, nik_hash)| {
            failure.email.as_ref() == Some(email)
                || (nik_hash.is_some() && failure.nik_hash == *nik_hash)
        });
        if !related {
            return Ok(None);
        }
        crate::db::accounts::find_upload(conn, &keys, &id)
    })
    .await
}
