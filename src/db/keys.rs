//! Wrapped data keys (`data_keys`) and the KTP photos they seal
//! (`domain/sealed.rs` has the cryptography). A photo's bytes are stored
//! sealed under a data key of its own, bound to `ktp_uploads.data:<id>`;
//! deleting the key row shreds the photo.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::domain::sealed::{self, DataKey, KeyRing, SealError, WrappedKey};
use crate::error::AppError;
use crate::schema::{accounts, data_keys, failures, ktp_uploads, mail_outbox, registrations};

/// Where a photo's bytes are sealed to.
pub fn photo_aad(upload_id: &str) -> String {
    sealed::aad("ktp_uploads", "data", upload_id)
}

pub fn insert(conn: &mut DbConn, key: &WrappedKey, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(data_keys::table)
        .values((
            data_keys::id.eq(&key.id),
            data_keys::kek_version.eq(key.kek_version),
            data_keys::wrapped.eq(&key.wrapped),
            data_keys::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<WrappedKey>> {
    data_keys::table
        .find(id)
        .select((data_keys::id, data_keys::kek_version, data_keys::wrapped))
        .first::<(String, i32, Vec<u8>)>(conn)
        .optional()
        .map(|row| {
            row.map(|(id, kek_version, wrapped)| WrappedKey {
                id,
                kek_version,
                wrapped,
            })
        })
}

/// A photo sealed for storage under a fresh data key: the key to store
/// with it and the sealed bytes.
pub fn seal_photo(
    ring: &KeyRing,
    upload_id: &str,
    plain: &[u8],
) -> QueryResult<(WrappedKey, Vec<u8>)> {
    let (wrapped, key) = crate::db::identity::new_key(ring)?;
    let sealed = key.seal(&photo_aad(upload_id), plain);
    Ok((wrapped, sealed))
}

/// Opens stored bytes: sealed ones with their data key, or bytes stored
/// in clear by an earlier version (not yet sealed) as they are. A value
/// that does not open is a 503 for that request, logged with the key id.
pub fn open_photo(
    conn: &mut DbConn,
    ring: &KeyRing,
    upload_id: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>, AppError> {
    let Some(key_id) = sealed::sealed_key_id(&stored) else {
        return Ok(stored);
    };
    let opened = find(conn, key_id)?
        .ok_or_else(|| SealError::KeyGone(key_id.to_string()))
        .and_then(|wrapped| ring.unwrap(&wrapped))
        .and_then(|key: DataKey| key.open(&photo_aad(upload_id), &stored));
    opened.map_err(|e| {
        tracing::error!(upload = %upload_id, key = %key_id, error = %e, "a sealed photo does not open");
        AppError::unavailable(e)
    })
}

/// Photos still stored in clear (by an earlier version), sealed in one
/// batch of at most `limit`; each in its own short transaction, so the
/// batch is safe to stop at any point and to run on many instances. The
/// number sealed.
pub fn seal_clear_photos(
    conn: &mut DbConn,
    ring: &KeyRing,
    limit: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let ids: Vec<String> = ktp_uploads::table
        .filter(ktp_uploads::data_key_id.is_null())
        .order(ktp_uploads::id.asc())
        .select(ktp_uploads::id)
        .limit(limit)
        .load(conn)?;
    let mut sealed = 0;
    for id in ids {
        // Read, then write: on SQLite a lock upgrade that can meet a busy
        // writer, so the short transaction is tried again.
        let done = super::retry_busy(|| {
            conn.transaction(|conn| -> QueryResult<bool> {
                let Some(data) = ktp_uploads::table
                    .find(&id)
                    .filter(ktp_uploads::data_key_id.is_null())
                    .select(ktp_uploads::data)
                    .first::<Vec<u8>>(conn)
                    .optional()?
                else {
                    return Ok(false);
                };
                if sealed::is_sealed(&data) {
                    return Ok(false);
                }
                let (key, data) = seal_photo(ring, &id, &data)?;
                insert(conn, &key, now)?;
                let changed = diesel::update(
                    ktp_uploads::table
                        .find(&id)
                        .filter(ktp_uploads::data_key_id.is_null()),
                )
                .set((
                    ktp_uploads::data.eq(&data),
                    ktp_uploads::data_key_id.eq(&key.id),
                ))
                .execute(conn)?;
                Ok(changed == 1)
            })
        })?;
        sealed += usize::from(done);
    }
    Ok(sealed)
}

/// Photos still stored in clear.
pub fn clear_photo_count(conn: &mut DbConn) -> QueryResult<i64> {
    ktp_uploads::table
        .filter(ktp_uploads::data_key_id.is_null())
        .count()
        .get_result(conn)
}

/// Data keys per KEK version (for `/metrics` and the rotation's progress).
pub fn count_by_version(conn: &mut DbConn) -> QueryResult<Vec<(i32, i64)>> {
    data_keys::table
        .group_by(data_keys::kek_version)
        .select((data_keys::kek_version, diesel::dsl::count_star()))
        .order(data_keys::kek_version.asc())
        .load(conn)
}

/// Re-wraps at most `limit` data keys still under an older KEK version
/// with the newest (rotation). Each key is updated only if no other
/// instance rewrapped it first, so batches may run anywhere and be killed
/// at any point. The number rewrapped.
pub fn rewrap_batch(conn: &mut DbConn, ring: &KeyRing, limit: i64) -> Result<usize, AppError> {
    let rows: Vec<(String, i32, Vec<u8>)> = data_keys::table
        .filter(data_keys::kek_version.lt(ring.newest()))
        .order(data_keys::id.asc())
        .select((data_keys::id, data_keys::kek_version, data_keys::wrapped))
        .limit(limit)
        .load(conn)?;
    let mut done = 0;
    for (id, kek_version, wrapped) in rows {
        let old = WrappedKey {
            id,
            kek_version,
            wrapped,
        };
        let new = match ring.rewrap(&old) {
            Ok(Some(new)) => new,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(key = %old.id, kek_version, error = %e, "a data key does not unwrap; left as it is");
                return Err(AppError::unavailable(e));
            }
        };
        done += diesel::update(
            data_keys::table
                .find(&old.id)
                .filter(data_keys::kek_version.eq(old.kek_version)),
        )
        .set((
            data_keys::kek_version.eq(new.kek_version),
            data_keys::wrapped.eq(&new.wrapped),
        ))
        .execute(conn)?;
    }
    Ok(done)
}

/// Destroys the data keys nothing uses any more (their photo,
/// registration, account, waiting mail or case was deleted): what they sealed is unreadable
/// from then on, in this database and, once the KEK version that wrapped
/// them is retired, in every backup. Keys younger than `cutoff` are left
/// for the transaction that is storing what they seal.
pub fn shred_unused(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    let photos = ktp_uploads::table
        .filter(ktp_uploads::data_key_id.is_not_null())
        .select(ktp_uploads::data_key_id.assume_not_null());
    let registrations = registrations::table
        .filter(registrations::data_key_id.is_not_null())
        .select(registrations::data_key_id.assume_not_null());
    let accounts = accounts::table
        .filter(accounts::data_key_id.is_not_null())
        .select(accounts::data_key_id.assume_not_null());
    let mails = mail_outbox::table
        .filter(mail_outbox::data_key_id.is_not_null())
        .select(mail_outbox::data_key_id.assume_not_null());
    let failures = failures::table
        .filter(failures::data_key_id.is_not_null())
        .select(failures::data_key_id.assume_not_null());
    let cases = crate::schema::nik_cases::table.select(crate::schema::nik_cases::data_key_id);
    diesel::delete(
        data_keys::table
            .filter(data_keys::created_at.lt(cutoff))
            .filter(diesel::dsl::not(data_keys::id.eq_any(photos)))
            .filter(diesel::dsl::not(data_keys::id.eq_any(registrations)))
            .filter(diesel::dsl::not(data_keys::id.eq_any(accounts)))
            .filter(diesel::dsl::not(data_keys::id.eq_any(mails)))
            .filter(diesel::dsl::not(data_keys::id.eq_any(failures)))
            .filter(diesel::dsl::not(data_keys::id.eq_any(cases))),
    )
    .execute(conn)
}

/// Registrations and accounts an earlier version stored in clear, sealed
/// in one batch of at most `limit` each (each row in its own short
/// transaction, changed only if still in clear). The number sealed.
pub fn seal_clear_identities(
    conn: &mut DbConn,
    ring: &KeyRing,
    limit: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    // The same steps for both tables, which diesel types apart.
    macro_rules! seal_batch {
        ($table:ident, $row:ty, $columns:ident) => {{
            let clear: Vec<String> = $table::table
                .filter($table::sealed.is_null())
                .select($table::id)
                .limit(limit)
                .load(conn)?;
            let mut done = 0;
            for id in clear {
                done += super::retry_busy(|| {
                    conn.transaction(|conn| {
                        let Some(row) = $table::table
                            .find(&id)
                            .filter($table::sealed.is_null())
                            .first::<$row>(conn)
                            .optional()?
                        else {
                            return Ok(0);
                        };
                        let (wrapped, key) = crate::db::identity::new_key(ring)?;
                        insert(conn, &wrapped, now)?;
                        let table = stringify!($table);
                        let s = super::identity::seal(ring, &key, table, &id, &row.identity());
                        diesel::update($table::table.find(&id).filter($table::sealed.is_null()))
                            .set(super::identity::$columns::of(&s, &key))
                            .execute(conn)
                    })
                })?;
            }
            done
        }};
    }
    let sealed = seal_batch!(
        registrations,
        super::registrations::Registration,
        SealedRegistration
    ) + seal_batch!(accounts, super::accounts::Account, SealedAccount);
    Ok(sealed)
}

/// Failure rows and mails an earlier version stored with the address in
/// clear, sealed in one batch of at most `limit` each (conditional updates,
/// so many instances may run it). A failure's address is sealed under the
/// key of its day and its `email` column becomes the blind index; a waiting
/// mail is sealed as `outbox::insert_mail` seals it; a mail already sent or
/// failed keeps only the index of its address and no bodies.
pub fn seal_clear_logs(
    conn: &mut DbConn,
    ring: &KeyRing,
    limit: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    use super::identity::{INDEX_PREFIX, email_index};
    let mut sealed = 0;
    let clear: Vec<(String, String, NaiveDateTime)> = failures::table
        .filter(failures::email_sealed.is_null())
        .filter(failures::email.is_not_null())
        .filter(failures::email.not_like(format!("{INDEX_PREFIX}%")))
        .select((
            failures::reference,
            failures::email.assume_not_null(),
            failures::occurred_at,
        ))
        .limit(limit)
        .load(conn)?;
    // Sealed under the key of the row's day, as new rows are; one key per
    // day of the batch.
    let mut day_keys: std::collections::HashMap<chrono::NaiveDate, DataKey> =
        std::collections::HashMap::new();
    for (reference, email, at) in clear {
        let key = match day_keys.entry(at.date()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(super::failures::day_key(conn, ring, at)?)
            }
        };
        let stored = key.seal(&super::failures::email_aad(&reference), email.as_bytes());
        sealed += super::retry_busy(|| {
            diesel::update(
                failures::table
                    .find(&reference)
                    .filter(failures::email_sealed.is_null())
                    .filter(failures::email.eq(&email)),
            )
            .set((
                failures::email.eq(email_index(ring, &email)),
                failures::email_sealed.eq(&stored),
                failures::data_key_id.eq(key.id()),
            ))
            .execute(conn)
        })?;
    }
    let clear: Vec<(String, String)> = mail_outbox::table
        .filter(mail_outbox::sealed.is_null())
        .filter(mail_outbox::to_address.not_like(format!("{INDEX_PREFIX}%")))
        .select((mail_outbox::id, mail_outbox::status))
        .limit(limit)
        .load(conn)?;
    for (id, status) in clear {
        sealed += super::retry_busy(|| {
            conn.transaction(|conn| {
                let Some(mail) = mail_outbox::table
                    .find(&id)
                    .filter(mail_outbox::sealed.is_null())
                    .filter(mail_outbox::to_address.not_like(format!("{INDEX_PREFIX}%")))
                    .first::<super::outbox::Mail>(conn)
                    .optional()?
                else {
                    return Ok(0);
                };
                if status == super::outbox::STATUS_PENDING {
                    super::outbox::seal_in_place(conn, ring, &mail, now)
                } else {
                    diesel::update(mail_outbox::table.find(&id))
                        .set((
                            mail_outbox::to_address.eq(email_index(ring, &mail.to_address)),
                            mail_outbox::text_body.eq(""),
                            mail_outbox::html_body.eq(""),
                        ))
                        .execute(conn)
                }
            })
        })?;
    }
    Ok(sealed)
}

/// One batch of every kind of row an earlier version stored in clear:
/// photos, registrations, accounts, failure rows and mails.
pub fn seal_clear(
    conn: &mut DbConn,
    ring: &KeyRing,
    limit: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    Ok(seal_clear_photos(conn, ring, limit, now)?
        + seal_clear_identities(conn, ring, limit, now)?
        + seal_clear_logs(conn, ring, limit, now)?)
}

/// Rows of every kind still holding identity data in clear.
pub fn clear_count(conn: &mut DbConn) -> QueryResult<i64> {
    use super::identity::INDEX_PREFIX;
    let failures: i64 = failures::table
        .filter(failures::email_sealed.is_null())
        .filter(failures::email.is_not_null())
        .filter(failures::email.not_like(format!("{INDEX_PREFIX}%")))
        .count()
        .get_result(conn)?;
    let mails: i64 = mail_outbox::table
        .filter(mail_outbox::sealed.is_null())
        .filter(mail_outbox::to_address.not_like(format!("{INDEX_PREFIX}%")))
        .count()
        .get_result(conn)?;
    Ok(clear_photo_count(conn)? + clear_identity_count(conn)? + failures + mails)
}

/// Registrations and accounts still in clear.
pub fn clear_identity_count(conn: &mut DbConn) -> QueryResult<i64> {
    let registrations: i64 = registrations::table
        .filter(registrations::sealed.is_null())
        .count()
        .get_result(conn)?;
    let accounts: i64 = accounts::table
        .filter(accounts::sealed.is_null())
        .count()
        .get_result(conn)?;
    Ok(registrations + accounts)
}

/// After the upgrade has sealed what an earlier version stored in clear:
/// the old versions of those rows still sit in free pages and the
/// write-ahead log (SQLite) or as dead tuples (PostgreSQL) until the
/// database is compacted. SQLite: checkpoint the log to empty and VACUUM
/// (the file is rewritten; writers wait meanwhile). PostgreSQL: VACUUM
/// (dead tuples become free space; `VACUUM FULL` would rewrite the files,
/// under an exclusive lock, and is left to the operator).
pub fn compact(conn: &mut DbConn) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConn::Sqlite(c) => c.batch_execute(
            "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        ),
        DbConn::Postgres(c) => c.batch_execute("VACUUM"),
    }
}
