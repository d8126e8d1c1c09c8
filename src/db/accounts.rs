//! Accounts, KTP uploads, verification tokens and idempotent registration.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::DbConn;
use super::outbox::{NewMail, insert_mail};
use crate::schema::{account_tokens, accounts, ktp_uploads, registration_submissions};

pub const PURPOSE_VERIFY: &str = "verify";

#[derive(Debug, Clone, Queryable)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub nik: String,
    pub full_name: String,
    pub birth_date: String,
    pub phone: String,
    pub npwp: Option<String>,
    pub password_hash: String,
    pub ktp_upload_id: String,
    pub lang: String,
    pub verified_at: Option<NaiveDateTime>,
    pub session_epoch: i64,
    pub created_at: NaiveDateTime,
    pub nik_hash: Option<String>,
}

impl Account {
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount {
    pub id: String,
    pub email: String,
    pub nik: String,
    pub full_name: String,
    pub birth_date: String,
    pub phone: String,
    pub npwp: Option<String>,
    pub password_hash: String,
    pub ktp_upload_id: String,
    pub lang: String,
    pub created_at: NaiveDateTime,
    pub nik_hash: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ktp_uploads)]
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub data: &'a [u8],
    pub created_at: NaiveDateTime,
}

/// What a draft shows about a photo already received.
#[derive(Debug, Clone, Queryable)]
pub struct UploadInfo {
    pub id: String,
    pub file_name: String,
    pub size_bytes: i64,
}

pub fn insert_upload(conn: &mut DbConn, upload: &NewUpload<'_>) -> QueryResult<()> {
    diesel::insert_into(ktp_uploads::table)
        .values(upload)
        .execute(conn)
        .map(|_| ())
}

/// A draft's upload that no account owns yet.
pub fn find_draft_upload(conn: &mut DbConn, id: &str) -> QueryResult<Option<UploadInfo>> {
    let owned = accounts::table
        .filter(accounts::ktp_upload_id.eq(id))
        .count()
        .get_result::<i64>(conn)?;
    if owned > 0 {
        return Ok(None);
    }
    ktp_uploads::table
        .filter(ktp_uploads::id.eq(id))
        .select((
            ktp_uploads::id,
            ktp_uploads::file_name,
            ktp_uploads::size_bytes,
        ))
        .first(conn)
        .optional()
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<Account>> {
    accounts::table
        .filter(accounts::email.eq(email))
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<Account>> {
    accounts::table.find(id).first(conn).optional()
}

pub fn find_by_nik_hash(conn: &mut DbConn, hash: &str) -> QueryResult<Option<Account>> {
    accounts::table
        .filter(accounts::nik_hash.eq(hash))
        .first(conn)
        .optional()
}

/// Fills `nik_hash` for accounts made before it existed. Returns how many.
pub fn backfill_nik_hashes(conn: &mut DbConn, hash: impl Fn(&str) -> String) -> QueryResult<usize> {
    let missing: Vec<(String, String)> = accounts::table
        .filter(accounts::nik_hash.is_null())
        .select((accounts::id, accounts::nik))
        .load(conn)?;
    for (id, nik) in &missing {
        diesel::update(accounts::table.find(id))
            .set(accounts::nik_hash.eq(hash(nik)))
            .execute(conn)?;
    }
    Ok(missing.len())
}

fn find_by_nik(conn: &mut DbConn, nik: &str) -> QueryResult<Option<Account>> {
    accounts::table
        .filter(accounts::nik.eq(nik))
        .first(conn)
        .optional()
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = account_tokens)]
pub struct NewToken<'a> {
    pub token_hash: &'a str,
    pub account_id: &'a str,
    pub purpose: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// How a submitted registration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new account (or, with `replay`, the account this same submission
    /// made before: a retry after a dropped connection or a double click).
    Registered {
        account_id: String,
        email: String,
        replay: bool,
    },
    /// A verified account already has this email.
    EmailTaken,
    /// A verified account already has this NIK.
    NikTaken,
    /// An unverified account is waiting for this email to be confirmed.
    EmailPending { account_id: String },
}

/// What the registration transaction writes besides the account.
pub struct Registration<'a> {
    pub submission_id: &'a str,
    pub account: NewAccount,
    pub token_hash: &'a str,
    pub token_expires_at: NaiveDateTime,
    pub mail: NewMail,
}

enum TxError {
    Db(DieselError),
    Stop(RegisterOutcome),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

/// Races between concurrent submissions end in a unique violation (two
/// inserts of one email, NIK or submission id) or, on SQLite, a busy
/// snapshot; running the whole transaction again then sees the winner.
fn is_race(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
        | DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => super::is_busy_message(info.message()),
        _ => false,
    }
}

/// Creates the account, its verification token and the verification mail
/// in one transaction, recorded under the form's `submission_id`, so that
/// submitting the same form again gets the same outcome.
pub fn register(conn: &mut DbConn, reg: &Registration<'_>) -> QueryResult<RegisterOutcome> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_register(conn, reg) {
            Ok(outcome) => return Ok(outcome),
            Err(TxError::Stop(outcome)) => return Ok(outcome),
            Err(TxError::Db(e)) if attempt < 4 && is_race(&e) => {
                tracing::debug!(error = %e, attempt, "registration raced; trying again");
                std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
            }
            Err(TxError::Db(e)) => return Err(e),
        }
    }
}

fn try_register(conn: &mut DbConn, reg: &Registration<'_>) -> Result<RegisterOutcome, TxError> {
    // A submission seen before, committed: the same answer again.
    if let Some(outcome) = replay(conn, reg.submission_id)? {
        return Ok(outcome);
    }
    conn.transaction::<_, TxError, _>(|conn| {
        // Writing first takes SQLite's write lock at once (waiting on the
        // busy timeout), and makes a concurrent twin of this submission wait
        // on PostgreSQL's primary key until we commit.
        diesel::insert_into(registration_submissions::table)
            .values((
                registration_submissions::submission_id.eq(reg.submission_id),
                registration_submissions::email.eq(&reg.account.email),
                registration_submissions::created_at.eq(reg.account.created_at),
            ))
            .execute(conn)?;

        if let Some(existing) = find_by_email(conn, &reg.account.email)? {
            return Err(TxError::Stop(if existing.is_verified() {
                RegisterOutcome::EmailTaken
            } else {
                RegisterOutcome::EmailPending {
                    account_id: existing.id,
                }
            }));
        }
        if let Some(existing) = find_by_nik(conn, &reg.account.nik)? {
            if existing.is_verified() {
                return Err(TxError::Stop(RegisterOutcome::NikTaken));
            }
            // An unconfirmed registration with this NIK under another email
            // (usually a mistyped address): the new one replaces it.
            delete_account(conn, &existing)?;
        }

        diesel::insert_into(accounts::table)
            .values(&reg.account)
            .execute(conn)?;
        diesel::insert_into(account_tokens::table)
            .values(NewToken {
                token_hash: reg.token_hash,
                account_id: &reg.account.id,
                purpose: PURPOSE_VERIFY,
                created_at: reg.account.created_at,
                expires_at: reg.token_expires_at,
            })
            .execute(conn)?;
        insert_mail(conn, &reg.mail)?;
        diesel::update(registration_submissions::table.find(reg.submission_id))
            .set(registration_submissions::account_id.eq(&reg.account.id))
            .execute(conn)?;
        Ok(RegisterOutcome::Registered {
            account_id: reg.account.id.clone(),
            email: reg.account.email.clone(),
            replay: false,
        })
    })
}

fn replay(conn: &mut DbConn, submission_id: &str) -> QueryResult<Option<RegisterOutcome>> {
    let found: Option<(Option<String>, String)> = registration_submissions::table
        .find(submission_id)
        .select((
            registration_submissions::account_id,
            registration_submissions::email,
        ))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((Some(account_id), email)) => Some(RegisterOutcome::Registered {
            account_id,
            email,
            replay: true,
        }),
        _ => None,
    })
}

fn delete_account(conn: &mut DbConn, account: &Account) -> QueryResult<()> {
    diesel::delete(accounts::table.find(&account.id)).execute(conn)?;
    diesel::delete(ktp_uploads::table.find(&account.ktp_upload_id)).execute(conn)?;
    Ok(())
}

/// When the newest verification link of an account was issued.
pub fn last_token_issued(
    conn: &mut DbConn,
    account_id: &str,
    purpose: &str,
) -> QueryResult<Option<NaiveDateTime>> {
    account_tokens::table
        .filter(account_tokens::account_id.eq(account_id))
        .filter(account_tokens::purpose.eq(purpose))
        .select(account_tokens::created_at)
        .order(account_tokens::created_at.desc())
        .first(conn)
        .optional()
}

/// Issues a new token (older ones of the same purpose stop working) and
/// queues its mail, in one transaction.
pub fn issue_token(conn: &mut DbConn, token: &NewToken<'_>, mail: &NewMail) -> QueryResult<()> {
    super::retry_busy(|| issue_token_once(conn, token, mail))
}

fn issue_token_once(conn: &mut DbConn, token: &NewToken<'_>, mail: &NewMail) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::update(
            account_tokens::table
                .filter(account_tokens::account_id.eq(token.account_id))
                .filter(account_tokens::purpose.eq(token.purpose))
                .filter(account_tokens::used_at.is_null())
                .filter(account_tokens::superseded_at.is_null()),
        )
        .set(account_tokens::superseded_at.eq(token.created_at))
        .execute(conn)?;
        diesel::insert_into(account_tokens::table)
            .values(token)
            .execute(conn)?;
        insert_mail(conn, mail)?;
        Ok(())
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified { email: String },
    AlreadyVerified { email: String },
    Expired { email: String },
    Superseded { email: String },
    Unknown,
}

#[derive(Queryable)]
struct TokenRow {
    account_id: String,
    expires_at: NaiveDateTime,
    superseded_at: Option<NaiveDateTime>,
}

/// Confirms an email address from the link's token. Clicking the link again
/// (or a mail scanner having opened it first) answers "already verified".
pub fn verify_email(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<VerifyOutcome> {
    super::retry_busy(|| verify_email_once(conn, token_hash, now))
}

fn verify_email_once(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<VerifyOutcome> {
    conn.transaction(|conn| {
        let token: Option<TokenRow> = account_tokens::table
            .find(token_hash)
            .filter(account_tokens::purpose.eq(PURPOSE_VERIFY))
            .select((
                account_tokens::account_id,
                account_tokens::expires_at,
                account_tokens::superseded_at,
            ))
            .first(conn)
            .optional()?;
        let Some(token) = token else {
            return Ok(VerifyOutcome::Unknown);
        };
        let Some(account) = find_by_id(conn, &token.account_id)? else {
            return Ok(VerifyOutcome::Unknown);
        };
        let email = account.email.clone();
        if account.is_verified() {
            return Ok(VerifyOutcome::AlreadyVerified { email });
        }
        if token.superseded_at.is_some() {
            return Ok(VerifyOutcome::Superseded { email });
        }
        if token.expires_at <= now {
            return Ok(VerifyOutcome::Expired { email });
        }
        diesel::update(accounts::table.find(&account.id))
            .set(accounts::verified_at.eq(now))
            .execute(conn)?;
        diesel::update(account_tokens::table.find(token_hash))
            .set(account_tokens::used_at.eq(now))
            .execute(conn)?;
        Ok(VerifyOutcome::Verified { email })
    })
}

/// Deletes unverified accounts created before `cutoff` (their tokens and
/// submissions go with them; their email and NIK are free again), and
/// draft uploads no account owns that are older than `draft_cutoff`.
pub fn purge_unverified(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    draft_cutoff: NaiveDateTime,
) -> QueryResult<(usize, usize)> {
    super::retry_busy(|| purge_unverified_once(conn, cutoff, draft_cutoff))
}

fn purge_unverified_once(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    draft_cutoff: NaiveDateTime,
) -> QueryResult<(usize, usize)> {
    conn.transaction(|conn| {
        let stale: Vec<Account> = accounts::table
            .filter(accounts::verified_at.is_null())
            .filter(accounts::created_at.lt(cutoff))
            .load(conn)?;
        for account in &stale {
            delete_account(conn, account)?;
        }
        let owned = accounts::table.select(accounts::ktp_upload_id);
        let drafts = diesel::delete(
            ktp_uploads::table
                .filter(ktp_uploads::created_at.lt(draft_cutoff))
                .filter(diesel::dsl::not(ktp_uploads::id.eq_any(owned))),
        )
        .execute(conn)?;
        Ok((stale.len(), drafts))
    })
}

pub const PURPOSE_RESET: &str = "reset";

/// The account a usable token of `purpose` belongs to: known, not used,
/// not replaced by a newer one, not expired.
pub fn account_for_token(
    conn: &mut DbConn,
    token_hash: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Account>> {
    let account_id: Option<String> = account_tokens::table
        .find(token_hash)
        .filter(account_tokens::purpose.eq(purpose))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::superseded_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .select(account_tokens::account_id)
        .first(conn)
        .optional()?;
    match account_id {
        Some(id) => find_by_id(conn, &id),
        None => Ok(None),
    }
}

/// Sets a new password from a reset token: the token is used up, other
/// reset links stop working, and the session epoch moves on so every
/// existing session of the account ends. `false` when the token is no
/// longer usable (used meanwhile, expired).
pub fn reset_password(
    conn: &mut DbConn,
    token_hash: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    super::retry_busy(|| reset_password_once(conn, token_hash, password_hash, now))
}

fn reset_password_once(
    conn: &mut DbConn,
    token_hash: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let Some(account) = account_for_token(conn, token_hash, PURPOSE_RESET, now)? else {
            return Ok(false);
        };
        let used = diesel::update(
            account_tokens::table
                .find(token_hash)
                .filter(account_tokens::used_at.is_null()),
        )
        .set(account_tokens::used_at.eq(now))
        .execute(conn)?;
        if used != 1 {
            return Ok(false);
        }
        diesel::update(
            account_tokens::table
                .filter(account_tokens::account_id.eq(&account.id))
                .filter(account_tokens::purpose.eq(PURPOSE_RESET))
                .filter(account_tokens::used_at.is_null())
                .filter(account_tokens::superseded_at.is_null()),
        )
        .set(account_tokens::superseded_at.eq(now))
        .execute(conn)?;
        diesel::update(accounts::table.find(&account.id))
            .set((
                accounts::password_hash.eq(password_hash),
                accounts::session_epoch.eq(accounts::session_epoch + 1),
            ))
            .execute(conn)?;
        Ok(true)
    })
}
