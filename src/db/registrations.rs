//! Pending registrations: the citizen's details wait here, without a
//! password, until a mailed link is used to choose one. Only then does the
//! registration become an account (see `accounts`).
//!
//! - Email is unique among registrations: the same address registered again
//!   replaces the older data, and every earlier link shows the newest data.
//! - A NIK may wait under several addresses; the first to choose a password
//!   owns it (the accounts table keeps NIK and email unique).
//! - Links are never replaced: each unexpired one works until the password
//!   is chosen. Opening a link changes nothing but `link_opened_at`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::DbConn;
use super::accounts;
use super::identity::{self, Identity};
use super::outbox::{NewMail, insert_mail};
use crate::domain::sealed::KeyRing;
use crate::schema::{
    accounts as accounts_table, ktp_uploads, registration_submissions, registration_tokens,
    registrations,
};

#[derive(Debug, Clone, Queryable)]
pub struct Registration {
    pub id: String,
    pub email: String,
    pub nik: String,
    pub nik_hash: Option<String>,
    pub full_name: String,
    pub birth_date: String,
    pub phone: String,
    pub npwp: Option<String>,
    pub ktp_upload_id: String,
    pub lang: String,
    pub legacy_password_hash: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_sent_at: Option<NaiveDateTime>,
    pub link_opened_at: Option<NaiveDateTime>,
    pub completed_at: Option<NaiveDateTime>,
    pub account_id: Option<String>,
    /// The identity fields sealed (`db/identity.rs`); `None`: stored in
    /// clear by an earlier version.
    pub sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
}

impl Registration {
    /// Made with the old form, which asked for the password at sign-up.
    pub fn has_legacy_password(&self) -> bool {
        self.legacy_password_hash.is_some()
    }
}

identity::identity_row!(Registration, "registrations");

/// The citizen's details as submitted (already parsed and normalised).
#[derive(Debug, Clone)]
pub struct Details {
    pub identity: Identity,
    pub nik_hash: Option<String>,
    pub lang: String,
}

/// A photo received with this submission, stored in the same transaction.
pub struct PhotoUpload<'a> {
    pub id: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    /// Sealed under `key` (`db::keys::seal_photo`), with its plain size.
    pub data: &'a [u8],
    pub size_bytes: i64,
    pub key: &'a crate::domain::sealed::WrappedKey,
}

/// Everything one `POST /register` writes.
pub struct Submission<'a> {
    /// Seals the identity fields and makes the blind indexes.
    pub keys: &'a KeyRing,
    pub submission_id: &'a str,
    /// Used when the registration is new.
    pub new_id: &'a str,
    pub details: Details,
    /// The KTP photo: a new upload, or the id of a draft's earlier upload.
    pub new_photo: Option<PhotoUpload<'a>>,
    pub draft_upload_id: &'a str,
    pub token_hash: &'a str,
    pub token_expires_at: NaiveDateTime,
    /// The verification mail; its registration id is set to the row's.
    pub mail: NewMail,
    pub cooldown: Duration,
    pub now: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Stored, with (`mail_sent`) or without a new link (the address had
    /// one within the cooldown: its earlier links show the new data).
    /// `replaced`: the address was already waiting, its data replaced.
    /// `replay`: this same submission was stored before.
    Registered {
        registration_id: String,
        email: String,
        replaced: bool,
        mail_sent: bool,
        replay: bool,
    },
    /// A verified account has this email.
    EmailTaken,
    /// A verified account has this NIK.
    NikTaken,
}

enum TxError {
    Db(DieselError),
    Stop(SubmitOutcome),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

/// Concurrent writers end in a unique violation or, on SQLite, a busy
/// snapshot; running the whole transaction again then sees the winner.
fn is_race(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
        | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => super::is_busy_message(info.message()),
        _ => false,
    }
}

/// Runs `attempt` again (up to four times) when it lost a race.
fn retry_races<T>(mut attempt: impl FnMut() -> Result<T, DieselError>) -> QueryResult<T> {
    let mut tries = 0u64;
    loop {
        tries += 1;
        match attempt() {
            Err(e) if tries < 5 && is_race(&e) => {
                tracing::debug!(error = %e, tries, "registration write raced; trying again");
                std::thread::sleep(std::time::Duration::from_millis(15 * tries));
            }
            other => return other,
        }
    }
}

/// Stores a submitted registration, its photo, a link and its mail in one
/// transaction, recorded under the form's `submission_id` so that posting
/// the same form again gets the same outcome. No password is involved.
pub fn submit(conn: &mut DbConn, sub: &Submission<'_>) -> QueryResult<SubmitOutcome> {
    retry_races(|| match try_submit(conn, sub) {
        Ok(outcome) | Err(TxError::Stop(outcome)) => Ok(outcome),
        Err(TxError::Db(e)) => Err(e),
    })
}

fn try_submit(conn: &mut DbConn, sub: &Submission<'_>) -> Result<SubmitOutcome, TxError> {
    if let Some(outcome) = replay(conn, sub.keys, sub.submission_id)? {
        return Ok(outcome);
    }
    let d = &sub.details;
    let who = &d.identity;
    let ring = sub.keys;
    let email_index = identity::email_index(ring, &who.email);
    conn.transaction::<_, TxError, _>(|conn| {
        // Writing first takes SQLite's write lock at once, and makes a
        // concurrent twin of this submission wait on PostgreSQL's key.
        diesel::insert_into(registration_submissions::table)
            .values((
                registration_submissions::submission_id.eq(sub.submission_id),
                registration_submissions::email.eq(&email_index),
                registration_submissions::created_at.eq(sub.now),
            ))
            .execute(conn)?;
        if accounts::email_taken(conn, ring, &who.email)? {
            return Err(TxError::Stop(SubmitOutcome::EmailTaken));
        }
        if accounts::nik_taken(conn, ring, &who.nik)? {
            return Err(TxError::Stop(SubmitOutcome::NikTaken));
        }
        let upload_id = match &sub.new_photo {
            Some(photo) => {
                super::keys::insert(conn, photo.key, sub.now)?;
                diesel::insert_into(ktp_uploads::table)
                    .values((
                        ktp_uploads::id.eq(photo.id),
                        ktp_uploads::file_name.eq(photo.file_name),
                        ktp_uploads::content_type.eq(photo.content_type),
                        ktp_uploads::size_bytes.eq(photo.size_bytes),
                        ktp_uploads::data.eq(photo.data),
                        ktp_uploads::created_at.eq(sub.now),
                        ktp_uploads::data_key_id.eq(&photo.key.id),
                    ))
                    .execute(conn)?;
                photo.id
            }
            None => sub.draft_upload_id,
        };

        let existing = find_by_email(conn, ring, &who.email)?;
        let identity = who.clone();
        if let Some(old) = &existing
            && old.completed_at.is_some()
        {
            // Finished once, but its account is gone: start afresh.
            diesel::delete(registrations::table.find(&old.id)).execute(conn)?;
        }
        let (id, replaced) = match existing.filter(|r| r.completed_at.is_none()) {
            Some(old) => {
                // Sealed again under the row's own data key (a row an
                // earlier version stored in clear gets one now).
                let key = match &old.data_key_id {
                    Some(key_id) => identity::data_key(conn, ring, key_id)?,
                    None => {
                        let (wrapped, key) = crate::db::identity::new_key(ring)?;
                        super::keys::insert(conn, &wrapped, sub.now)?;
                        key
                    }
                };
                let sealed = identity::seal(ring, &key, "registrations", &old.id, &identity);
                diesel::update(registrations::table.find(&old.id))
                    .set((
                        identity::SealedRegistration::of(&sealed, &key),
                        registrations::nik_hash.eq(&d.nik_hash),
                        registrations::ktp_upload_id.eq(upload_id),
                        registrations::lang.eq(&d.lang),
                        // The old form's password went with the old data.
                        registrations::legacy_password_hash.eq(None::<String>),
                        registrations::updated_at.eq(sub.now),
                    ))
                    .execute(conn)?;
                if old.ktp_upload_id != upload_id {
                    delete_upload_if_unowned(conn, &old.ktp_upload_id)?;
                }
                (old.id, true)
            }
            None => {
                let (wrapped, key) = crate::db::identity::new_key(ring)?;
                super::keys::insert(conn, &wrapped, sub.now)?;
                let sealed = identity::seal(ring, &key, "registrations", sub.new_id, &identity);
                diesel::insert_into(registrations::table)
                    .values((
                        registrations::id.eq(sub.new_id),
                        identity::SealedRegistration::of(&sealed, &key),
                        registrations::nik_hash.eq(&d.nik_hash),
                        registrations::ktp_upload_id.eq(upload_id),
                        registrations::lang.eq(&d.lang),
                        registrations::created_at.eq(sub.now),
                        registrations::updated_at.eq(sub.now),
                    ))
                    .execute(conn)?;
                (sub.new_id.to_string(), false)
            }
        };
        let mail_sent = claim_send(conn, &id, sub.now, sub.cooldown)?;
        if mail_sent {
            let mut mail = sub.mail.clone();
            mail.registration_id = Some(id.clone());
            insert_token(conn, sub.token_hash, &id, sub.now, sub.token_expires_at)?;
            insert_mail(conn, ring, &mail)?;
        }
        diesel::update(registration_submissions::table.find(sub.submission_id))
            .set(registration_submissions::registration_id.eq(&id))
            .execute(conn)?;
        Ok(SubmitOutcome::Registered {
            registration_id: id,
            email: who.email.clone(),
            replaced,
            mail_sent,
            replay: false,
        })
    })
}

/// The outcome of a submission stored before: the same answer again (the
/// address from its registration; the submission row keeps only its
/// index).
fn replay(
    conn: &mut DbConn,
    ring: &KeyRing,
    submission_id: &str,
) -> QueryResult<Option<SubmitOutcome>> {
    let found: Option<Option<String>> = registration_submissions::table
        .find(submission_id)
        .select(registration_submissions::registration_id)
        .first(conn)
        .optional()?;
    let Some(Some(registration_id)) = found else {
        return Ok(None);
    };
    let registration = registrations::table
        .find(&registration_id)
        .first::<Registration>(conn)
        .optional()?;
    let Some(registration) = opened(conn, ring, registration)? else {
        return Ok(None);
    };
    Ok(Some(SubmitOutcome::Registered {
        registration_id,
        email: registration.email,
        replaced: false,
        mail_sent: true,
        replay: true,
    }))
}

/// Takes the right to send a link now: one conditional update, so however
/// many requests arrive at once (on any instance), one wins per cooldown.
fn claim_send(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    cooldown: Duration,
) -> QueryResult<bool> {
    let claimed = diesel::update(
        registrations::table
            .find(id)
            .filter(registrations::completed_at.is_null())
            .filter(
                registrations::last_sent_at
                    .is_null()
                    .or(registrations::last_sent_at.le(now - cooldown)),
            ),
    )
    .set(registrations::last_sent_at.eq(now))
    .execute(conn)?;
    Ok(claimed == 1)
}

fn insert_token(
    conn: &mut DbConn,
    token_hash: &str,
    registration_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(registration_tokens::table)
        .values((
            registration_tokens::token_hash.eq(token_hash),
            registration_tokens::registration_id.eq(registration_id),
            registration_tokens::created_at.eq(now),
            registration_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

fn delete_upload_if_unowned(conn: &mut DbConn, upload_id: &str) -> QueryResult<()> {
    diesel::delete(
        ktp_uploads::table
            .find(upload_id)
            .filter(diesel::dsl::not(ktp_uploads::id.eq_any(
                registrations::table.select(registrations::ktp_upload_id),
            )))
            .filter(diesel::dsl::not(ktp_uploads::id.eq_any(
                accounts_table::table.select(accounts_table::ktp_upload_id),
            ))),
    )
    .execute(conn)
    .map(|_| ())
}

pub fn find_by_email(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: &str,
) -> QueryResult<Option<Registration>> {
    find_under(conn, ring, email, false)
}

/// A registration waiting for its password under this address.
pub fn find_pending_by_email(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: &str,
) -> QueryResult<Option<Registration>> {
    find_under(conn, ring, email, true)
}

fn find_under(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: &str,
    pending_only: bool,
) -> QueryResult<Option<Registration>> {
    let mut query = registrations::table
        .filter(registrations::email.eq_any(identity::email_keys(ring, email)))
        .into_boxed::<crate::db::MultiBackend>();
    if pending_only {
        query = query.filter(registrations::completed_at.is_null());
    }
    let found = query.first(conn).optional()?;
    opened(conn, ring, found)
}

/// Registrations under this email or NIK (for the staff timeline).
pub fn find_related(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: Option<&str>,
    nik_hash: Option<&str>,
) -> QueryResult<Vec<Registration>> {
    let mut rows: Vec<Registration> = Vec::new();
    if let Some(email) = email {
        rows.extend(find_by_email(conn, ring, email)?);
    }
    if let Some(hash) = nik_hash {
        for row in registrations::table
            .filter(registrations::nik_hash.eq(hash))
            .order(registrations::created_at.desc())
            .limit(20)
            .load::<Registration>(conn)?
        {
            rows.push(row.opened(conn, ring)?);
        }
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows.dedup_by(|a, b| a.id == b.id);
    Ok(rows)
}

/// Whether an upload belongs to a registration or an account (so it is no
/// longer a draft's).
pub fn upload_is_owned(conn: &mut DbConn, upload_id: &str) -> QueryResult<bool> {
    let by_registration = registrations::table
        .filter(registrations::ktp_upload_id.eq(upload_id))
        .count()
        .get_result::<i64>(conn)?;
    let by_account = accounts_table::table
        .filter(accounts_table::ktp_upload_id.eq(upload_id))
        .count()
        .get_result::<i64>(conn)?;
    Ok(by_registration + by_account > 0)
}

/// What a mailed link leads to.
#[derive(Debug, Clone)]
pub enum LinkState {
    /// Not a link we sent (or its registration was purged).
    Unknown,
    /// The password was chosen (through this link or another): sign in.
    Done { email: String },
    /// The link is too old; a new one can be requested.
    Expired { email: String },
    /// Another registration with this NIK finished first.
    NikTaken { registration: Registration },
    /// Waiting for the password (or, for the old form's registrations, for
    /// one button press).
    Ready { registration: Registration },
}

/// The state a link leads to. With `record_open` (a GET, not a HEAD), the
/// time it was opened is noted for the staff timeline; nothing else changes.
pub fn open_link(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    now: NaiveDateTime,
    record_open: bool,
) -> QueryResult<LinkState> {
    let state = link_state(conn, ring, token_hash, now)?;
    if record_open
        && let LinkState::Ready { registration } | LinkState::NikTaken { registration } = &state
    {
        super::retry_busy(|| {
            diesel::update(registrations::table.find(&registration.id))
                .set(registrations::link_opened_at.eq(now))
                .execute(conn)
        })?;
    }
    Ok(state)
}

fn link_state(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<LinkState> {
    let token: Option<(String, NaiveDateTime)> = registration_tokens::table
        .find(token_hash)
        .select((
            registration_tokens::registration_id,
            registration_tokens::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((registration_id, expires_at)) = token else {
        return Ok(LinkState::Unknown);
    };
    let found = registrations::table
        .find(&registration_id)
        .first::<Registration>(conn)
        .optional()?;
    let Some(registration) = opened(conn, ring, found)? else {
        return Ok(LinkState::Unknown);
    };
    if registration.completed_at.is_some()
        || accounts::email_taken(conn, ring, &registration.email)?
    {
        return Ok(LinkState::Done {
            email: registration.email,
        });
    }
    if expires_at <= now {
        return Ok(LinkState::Expired {
            email: registration.email,
        });
    }
    if let Some(owner) = accounts::find_by_nik(conn, ring, &registration.nik)? {
        // Each statement reads the newest commits (PostgreSQL, read
        // committed): a second tab's reads can straddle the first tab
        // making this very account. Its own account is "done", not taken.
        if owner.email == registration.email {
            return Ok(LinkState::Done {
                email: registration.email,
            });
        }
        return Ok(LinkState::NikTaken { registration });
    }
    Ok(LinkState::Ready { registration })
}

#[derive(Debug, Clone)]
pub enum CompleteOutcome {
    /// The account exists now; the citizen is signed in with it.
    Completed { account_id: String, epoch: i64 },
    /// Not ready (any more): what the link leads to instead.
    NotReady(Box<LinkState>),
}

/// Chooses the password through a link: the registration becomes a
/// verified account, in one transaction. Two tabs posting at once make one
/// account: the second finds the registration completed. `password_hash`
/// `None` uses the old form's password (and is refused without one).
pub fn complete(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    password_hash: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<CompleteOutcome> {
    retry_races(|| {
        conn.transaction(|conn| {
            let state = link_state(conn, ring, token_hash, now)?;
            let LinkState::Ready { registration } = state else {
                return Ok(CompleteOutcome::NotReady(Box::new(state)));
            };
            let Some(hash) = password_hash
                .map(str::to_string)
                .or(registration.legacy_password_hash.clone())
            else {
                return Ok(CompleteOutcome::NotReady(Box::new(LinkState::Ready {
                    registration,
                })));
            };
            let claimed = diesel::update(
                registrations::table
                    .find(&registration.id)
                    .filter(registrations::completed_at.is_null()),
            )
            .set(registrations::completed_at.eq(now))
            .execute(conn)?;
            if claimed != 1 {
                return Ok(CompleteOutcome::NotReady(Box::new(LinkState::Done {
                    email: registration.email,
                })));
            }
            let account_id = uuid::Uuid::new_v4().to_string();
            // The account's identity under a data key of its own (deleting the
            // account shreds it, whatever becomes of the registration).
            let (wrapped, key) = crate::db::identity::new_key(ring)?;
            super::keys::insert(conn, &wrapped, now)?;
            let identity = registration.identity();
            let sealed = identity::seal(ring, &key, "accounts", &account_id, &identity);
            diesel::insert_into(accounts_table::table)
                .values((
                    accounts_table::id.eq(&account_id),
                    identity::SealedAccount::of(&sealed, &key),
                    accounts_table::password_hash.eq(&hash),
                    accounts_table::ktp_upload_id.eq(&registration.ktp_upload_id),
                    accounts_table::lang.eq(&registration.lang),
                    accounts_table::verified_at.eq(Some(now)),
                    accounts_table::created_at.eq(now),
                    accounts_table::nik_hash.eq(&registration.nik_hash),
                ))
                .execute(conn)?;
            diesel::update(registrations::table.find(&registration.id))
                .set(registrations::account_id.eq(&account_id))
                .execute(conn)?;
            Ok(CompleteOutcome::Completed {
                account_id,
                epoch: 0,
            })
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendOutcome {
    Sent,
    /// A link went out less than the cooldown ago.
    Cooldown,
    /// No registration waits for this address.
    NothingWaiting,
}

/// How long a new link works, and the shortest time between two.
#[derive(Debug, Clone, Copy)]
pub struct LinkTimes {
    pub ttl: Duration,
    pub cooldown: Duration,
}

/// Sends one more link to a waiting registration (earlier links keep
/// working), unless one went out within the cooldown. `mail` builds the
/// mail for the registration found.
pub fn resend(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: &str,
    token_hash: &str,
    LinkTimes { ttl, cooldown }: LinkTimes,
    now: NaiveDateTime,
    mail: impl Fn(&Registration) -> Option<NewMail>,
) -> QueryResult<ResendOutcome> {
    let Some(registration) = find_pending_by_email(conn, ring, email)? else {
        return Ok(ResendOutcome::NothingWaiting);
    };
    if accounts::email_taken(conn, ring, email)? {
        return Ok(ResendOutcome::NothingWaiting);
    }
    let Some(mail) = mail(&registration) else {
        return Err(DieselError::RollbackTransaction);
    };
    super::retry_busy(|| {
        conn.transaction(|conn| {
            if !claim_send(conn, &registration.id, now, cooldown)? {
                return Ok(ResendOutcome::Cooldown);
            }
            insert_token(conn, token_hash, &registration.id, now, now + ttl)?;
            insert_mail(conn, ring, &mail)?;
            Ok(ResendOutcome::Sent)
        })
    })
}

/// Deletes registrations that waited longer than `cutoff` without a
/// password (their links and photos go with them), finished registrations
/// older than that (their accounts keep the photo), and draft uploads that
/// nothing owns, older than `draft_cutoff`. Returns (registrations, drafts).
pub fn purge(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    draft_cutoff: NaiveDateTime,
) -> QueryResult<(usize, usize)> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let old =
                diesel::delete(registrations::table.filter(registrations::updated_at.lt(cutoff)))
                    .execute(conn)?;
            let drafts = diesel::delete(
                ktp_uploads::table
                    .filter(ktp_uploads::created_at.lt(draft_cutoff))
                    .filter(diesel::dsl::not(ktp_uploads::id.eq_any(
                        registrations::table.select(registrations::ktp_upload_id),
                    )))
                    .filter(diesel::dsl::not(ktp_uploads::id.eq_any(
                        accounts_table::table.select(accounts_table::ktp_upload_id),
                    ))),
            )
            .execute(conn)?;
            // The deleted photos' data keys go too (crypto-shredding);
            // keys younger than an hour may belong to a photo being stored.
            super::keys::shred_unused(conn, draft_cutoff.min(cutoff))?;
            Ok((old, drafts))
        })
    })
}

/// What correcting a waiting registration's address came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectOutcome {
    /// The registration now has the new address; its link is on its way.
    Corrected,
    /// Nothing waits under the old address (verified, cancelled, expired).
    NothingWaiting,
    /// The new address already has an account or a waiting registration.
    NewTaken,
}

/// Moves the registration waiting under `old` to `new`, in one transaction:
/// its identity sealed again with the new address (data and photo kept),
/// the links sent to the old address withdrawn, a new link and its mail
/// (`mail(registration)`, addressed to `new`) queued.
#[allow(clippy::too_many_arguments)]
pub fn change_email(
    conn: &mut DbConn,
    ring: &KeyRing,
    old: &str,
    new: &str,
    token_hash: &str,
    ttl: Duration,
    now: NaiveDateTime,
    mail: impl Fn(&Registration) -> Option<NewMail>,
) -> QueryResult<CorrectOutcome> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let Some(registration) = find_pending_by_email(conn, ring, old)? else {
                return Ok(CorrectOutcome::NothingWaiting);
            };
            if accounts::email_taken(conn, ring, new)? || find_by_email(conn, ring, new)?.is_some()
            {
                return Ok(CorrectOutcome::NewTaken);
            }
            let key = match &registration.data_key_id {
                Some(id) => identity::data_key(conn, ring, id)?,
                None => {
                    let (wrapped, key) = identity::new_key(ring)?;
                    super::keys::insert(conn, &wrapped, now)?;
                    key
                }
            };
            let moved = identity::Identity {
                email: new.to_string(),
                nik: registration.nik.clone(),
                full_name: registration.full_name.clone(),
                birth_date: registration.birth_date.clone(),
                phone: registration.phone.clone(),
                npwp: registration.npwp.clone(),
            };
            let s = identity::seal(ring, &key, "registrations", &registration.id, &moved);
            diesel::update(
                registrations::table
                    .find(&registration.id)
                    .filter(registrations::completed_at.is_null()),
            )
            .set((
                identity::SealedRegistration::of(&s, &key),
                registrations::updated_at.eq(now),
                registrations::last_sent_at.eq(now),
            ))
            .execute(conn)?;
            diesel::delete(
                registration_tokens::table
                    .filter(registration_tokens::registration_id.eq(&registration.id)),
            )
            .execute(conn)?;
            let moved_registration = Registration {
                email: new.to_string(),
                ..registration.clone()
            };
            let Some(mail) = mail(&moved_registration) else {
                return Err(DieselError::RollbackTransaction);
            };
            insert_token(conn, token_hash, &registration.id, now, now + ttl)?;
            insert_mail(conn, ring, &mail)?;
            Ok(CorrectOutcome::Corrected)
        })
        .or_else(|e| match e {
            // Another registration took the new address meanwhile.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Ok(CorrectOutcome::NewTaken)
            }
            e => Err(e),
        })
    })
}
