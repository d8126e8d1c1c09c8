//! Accounts (verified: made when a registration's password is chosen), KTP
//! uploads, and password-reset tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::outbox::{NewMail, insert_mail};
use crate::domain::sealed::KeyRing;
use crate::schema::{account_tokens, accounts, ktp_uploads};

/// An account as stored. Its identity fields repeat `Identity`'s
/// (`db/identity.rs`) on purpose: diesel reads the row in the table's
/// column order, and the identity macros rely on the names matching.
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
    /// The identity fields sealed (`db/identity.rs`); `None`: stored in
    /// clear by an earlier version.
    pub sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
    /// Suspended by a case that released its NIK to someone else
    /// (`db/cases.rs`): it cannot sign in.
    pub suspended_at: Option<NaiveDateTime>,
    /// That case's reference.
    pub suspended_case: Option<String>,
    /// The owner asked for the account's deletion: it is carried out then,
    /// unless cancelled (`services/own_data.rs`).
    pub deletion_due_at: Option<NaiveDateTime>,
}

impl Account {
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

super::identity::identity_row!(Account, "accounts");

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ktp_uploads)]
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    /// Sealed under `data_key_id` (`db::keys::seal_photo`).
    pub data: &'a [u8],
    pub created_at: NaiveDateTime,
    pub data_key_id: Option<&'a str>,
}

/// What a draft shows about a photo already received.
#[derive(Debug, Clone, Queryable)]
pub struct UploadInfo {
    pub id: String,
    pub file_name: String,
    pub size_bytes: i64,
}

/// Stores a sealed photo and its data key, together.
pub fn insert_upload(
    conn: &mut DbConn,
    upload: &NewUpload<'_>,
    key: &crate::domain::sealed::WrappedKey,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        super::keys::insert(conn, key, upload.created_at)?;
        diesel::insert_into(ktp_uploads::table)
            .values(upload)
            .execute(conn)
            .map(|_| ())
    })
}

/// Bytes of KTP photos no account owns: drafts and registrations waiting
/// for their password (what the upload budget limits).
pub fn unowned_upload_bytes(conn: &mut DbConn) -> QueryResult<i64> {
    ktp_uploads::table
        .filter(diesel::dsl::not(
            ktp_uploads::id.eq_any(accounts::table.select(accounts::ktp_upload_id)),
        ))
        .select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)",
        ))
        .first(conn)
}

/// What re-encoding the stored photos did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReencodeReport {
    pub reencoded: usize,
    pub already_normalized: usize,
    /// Left as they were: they do not decode (kept for staff to see).
    pub unreadable: usize,
}

/// Re-encodes every stored KTP photo that is not yet normalised (photos
/// from before decoding was required: up to 1 MB, any of JPEG/PNG/BMP, with
/// their EXIF), one at a time so memory stays small.
pub fn reencode_photos(
    conn: &mut DbConn,
    ring: &KeyRing,
    now: NaiveDateTime,
) -> Result<ReencodeReport, crate::error::AppError> {
    let mut report = ReencodeReport::default();
    let mut after = String::new();
    loop {
        let ids: Vec<String> = ktp_uploads::table
            .filter(ktp_uploads::id.gt(&after))
            .order(ktp_uploads::id.asc())
            .select(ktp_uploads::id)
            .limit(100)
            .load(conn)?;
        let Some(last) = ids.last() else {
            return Ok(report);
        };
        after = last.clone();
        for id in ids {
            let Some((_, data)) = find_upload(conn, ring, &id)? else {
                continue;
            };
            if crate::domain::KtpPhoto::is_normalized(&data) {
                report.already_normalized += 1;
                continue;
            }
            match crate::domain::KtpPhoto::parse(&data, false) {
                Ok(photo) => {
                    // Sealed again under a new data key; the old one is
                    // shredded with the other unused keys.
                    let (key, sealed) = super::keys::seal_photo(ring, &id, photo.data())?;
                    super::retry_busy(|| {
                        conn.transaction(|conn| {
                            super::keys::insert(conn, &key, now)?;
                            diesel::update(ktp_uploads::table.find(&id))
                                .set((
                                    ktp_uploads::data.eq(&sealed),
                                    ktp_uploads::data_key_id.eq(&key.id),
                                    ktp_uploads::content_type.eq(photo.content_type()),
                                    ktp_uploads::size_bytes.eq(photo.data().len() as i64),
                                ))
                                .execute(conn)
                        })
                    })?;
                    report.reencoded += 1;
                }
                Err(problem) => {
                    tracing::warn!(upload = %id, ?problem, "stored photo does not decode; left as it is");
                    report.unreadable += 1;
                }
            }
        }
    }
}

/// A stored photo: its content type and bytes, opened.
pub fn find_upload(
    conn: &mut DbConn,
    ring: &KeyRing,
    id: &str,
) -> Result<Option<(String, Vec<u8>)>, crate::error::AppError> {
    let Some((content_type, stored)) = ktp_uploads::table
        .find(id)
        .select((ktp_uploads::content_type, ktp_uploads::data))
        .first::<(String, Vec<u8>)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let data = super::keys::open_photo(conn, ring, id, stored)?;
    Ok(Some((content_type, data)))
}

/// Whose photo an upload is: (email, NIK hash) of the account and the
/// registrations that hold it.
pub fn upload_owners(
    conn: &mut DbConn,
    ring: &KeyRing,
    id: &str,
) -> QueryResult<Vec<(String, Option<String>)>> {
    use crate::schema::registrations;
    let mut owners = Vec::new();
    for account in accounts::table
        .filter(accounts::ktp_upload_id.eq(id))
        .load::<Account>(conn)?
    {
        let account = account.opened(conn, ring)?;
        owners.push((account.email, account.nik_hash));
    }
    for registration in registrations::table
        .filter(registrations::ktp_upload_id.eq(id))
        .load::<super::registrations::Registration>(conn)?
    {
        let registration = registration.opened(conn, ring)?;
        owners.push((registration.email, registration.nik_hash));
    }
    Ok(owners)
}

/// A draft's upload that no registration or account owns yet.
pub fn find_draft_upload(conn: &mut DbConn, id: &str) -> QueryResult<Option<UploadInfo>> {
    if super::registrations::upload_is_owned(conn, id)? {
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

/// Deletes a draft's photo that a newer photo of the same form replaces;
/// one statement, so a photo a registration or account took meanwhile is
/// left alone.
pub fn delete_draft_upload(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    use crate::schema::{data_keys, registrations};
    super::retry_busy(|| {
        let key: Option<Option<String>> = ktp_uploads::table
            .find(id)
            .select(ktp_uploads::data_key_id)
            .first(conn)
            .optional()?;
        let deleted = diesel::delete(
            ktp_uploads::table
                .filter(ktp_uploads::id.eq(id))
                .filter(diesel::dsl::not(
                    ktp_uploads::id.eq_any(accounts::table.select(accounts::ktp_upload_id)),
                ))
                .filter(diesel::dsl::not(ktp_uploads::id.eq_any(
                    registrations::table.select(registrations::ktp_upload_id),
                ))),
        )
        .execute(conn)?;
        // Its data key goes with it: the photo is shredded.
        if deleted == 1
            && let Some(Some(key)) = key
        {
            diesel::delete(data_keys::table.find(key)).execute(conn)?;
        }
        Ok(deleted)
    })
}

pub fn find_by_email(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: &str,
) -> QueryResult<Option<Account>> {
    let found = accounts::table
        .filter(accounts::email.eq_any(super::identity::email_keys(ring, email)))
        .first(conn)
        .optional()?;
    opened(conn, ring, found)
}

/// Whether an account has this address: its index is enough, nothing is
/// opened.
pub fn email_taken(conn: &mut DbConn, ring: &KeyRing, email: &str) -> QueryResult<bool> {
    let n: i64 = accounts::table
        .filter(accounts::email.eq_any(super::identity::email_keys(ring, email)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Whether an account holds this NIK (by its index).
pub fn nik_taken(conn: &mut DbConn, ring: &KeyRing, nik: &str) -> QueryResult<bool> {
    let n: i64 = accounts::table
        .filter(accounts::nik.eq_any(super::identity::nik_keys(ring, nik)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn find_by_id(conn: &mut DbConn, ring: &KeyRing, id: &str) -> QueryResult<Option<Account>> {
    let found = accounts::table.find(id).first(conn).optional()?;
    opened(conn, ring, found)
}

pub fn find_by_nik_hash(
    conn: &mut DbConn,
    ring: &KeyRing,
    hash: &str,
) -> QueryResult<Option<Account>> {
    let found = accounts::table
        .filter(accounts::nik_hash.eq(hash))
        .first(conn)
        .optional()?;
    opened(conn, ring, found)
}

/// Fills `nik_hash` for accounts made before it existed. Returns how many.
pub fn backfill_nik_hashes(
    conn: &mut DbConn,
    ring: &KeyRing,
    hash: impl Fn(&str) -> String,
) -> QueryResult<usize> {
    let missing: Vec<Account> = accounts::table
        .filter(accounts::nik_hash.is_null())
        .load(conn)?;
    let count = missing.len();
    for account in missing {
        let account = account.opened(conn, ring)?;
        diesel::update(accounts::table.find(&account.id))
            .set(accounts::nik_hash.eq(hash(&account.nik)))
            .execute(conn)?;
    }
    Ok(count)
}

pub fn find_by_nik(conn: &mut DbConn, ring: &KeyRing, nik: &str) -> QueryResult<Option<Account>> {
    let found = accounts::table
        .filter(accounts::nik.eq_any(super::identity::nik_keys(ring, nik)))
        .first(conn)
        .optional()?;
    opened(conn, ring, found)
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

/// Issues a new reset token (older ones stop working) and queues its mail,
/// in one transaction.
pub fn issue_token(
    conn: &mut DbConn,
    ring: &KeyRing,
    token: &NewToken<'_>,
    mail: &NewMail,
) -> QueryResult<()> {
    super::retry_busy(|| issue_token_once(conn, ring, token, mail))
}

fn issue_token_once(
    conn: &mut DbConn,
    ring: &KeyRing,
    token: &NewToken<'_>,
    mail: &NewMail,
) -> QueryResult<()> {
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
        insert_mail(conn, ring, mail)?;
        Ok(())
    })
}

pub const PURPOSE_RESET: &str = "reset";

/// The account a usable token of `purpose` belongs to: known, not used,
/// not replaced by a newer one, not expired.
pub fn account_for_token(
    conn: &mut DbConn,
    ring: &KeyRing,
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
        Some(id) => find_by_id(conn, ring, &id),
        None => Ok(None),
    }
}

/// Sets a new password from a reset token: the token is used up, other
/// reset links stop working, and the session epoch moves on so every
/// existing session of the account ends. `false` when the token is no
/// longer usable (used meanwhile, expired).
pub fn reset_password(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let Some(account) = account_for_token(conn, ring, token_hash, PURPOSE_RESET, now)?
            else {
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
            super::sessions::revoke_all(conn, super::sessions::KIND_CITIZEN, &account.id, now)?;
            Ok(true)
        })
    })
}
