//! Rows of the failure log as read back (written by the failure-log service
//! in services/failures.rs). The email address of a row is sealed under
//! the data key of the row's day (`day_key`); `email` holds its blind
//! index until opened.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::domain::sealed::{self, KeyRing, SealError};

/// A failure as read back, with its resolution by staff. Its first
/// fields repeat `services::failures::NewFailureRow` on purpose: diesel
/// reads a row into the table's columns in order and writes one from an
/// `Insertable` of its own, and the two differ by the staff's columns.
#[derive(Debug, Clone, Queryable)]
pub struct FailureRow {
    pub reference: String,
    pub occurred_at: NaiveDateTime,
    pub reason: String,
    pub fields: String,
    pub email: Option<String>,
    pub nik_masked: Option<String>,
    pub nik_hash: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub path: String,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolved_by: Option<String>,
    pub email_shape: Option<String>,
    pub email_sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
}

/// The data key that seals the addresses of the failure log's rows of one
/// day (UTC), made by that day's first failure. Retention purges the log by
/// day, so the key goes (`keys::shred_unused`) when the last row of its day
/// does: crypto-shredding at the log's own granularity, with one key to
/// fetch and unwrap per page instead of one per row. Random 96-bit nonces
/// stay far from the 2^32 values NIST allows under one key: a day's
/// failures are counted in millions at most.
pub fn day_key(
    conn: &mut DbConn,
    ring: &KeyRing,
    at: NaiveDateTime,
) -> QueryResult<sealed::DataKey> {
    let id = format!("failures-{}", at.format("%Y-%m-%d"));
    let unwrap = |wrapped: &sealed::WrappedKey| {
        ring.unwrap(wrapped)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    };
    if let Some(wrapped) = super::keys::find(conn, &id)? {
        return unwrap(&wrapped);
    }
    let (wrapped, key) = ring
        .new_data_key_named(&id)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    match super::keys::insert(conn, &wrapped, at) {
        Ok(()) => Ok(key),
        // Another instance made it first: that one seals the day.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => match super::keys::find(conn, &id)? {
            Some(wrapped) => unwrap(&wrapped),
            None => Err(diesel::result::Error::NotFound),
        },
        Err(e) => Err(e),
    }
}

/// Where a failure's email is sealed to.
pub fn email_aad(reference: &str) -> String {
    sealed::aad("failures", "email", reference)
}

/// Opens the emails of failure rows (their data keys fetched in one
/// query); rows written in clear by an earlier version are left as they
/// are.
pub fn opened(
    conn: &mut DbConn,
    ring: &KeyRing,
    rows: Vec<FailureRow>,
) -> QueryResult<Vec<FailureRow>> {
    use crate::schema::data_keys;
    let mut ids: Vec<String> = rows.iter().filter_map(|r| r.data_key_id.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(rows);
    }
    let keys: Vec<sealed::WrappedKey> = data_keys::table
        .filter(data_keys::id.eq_any(&ids))
        .select((data_keys::id, data_keys::kek_version, data_keys::wrapped))
        .load::<(String, i32, Vec<u8>)>(conn)?
        .into_iter()
        .map(|(id, kek_version, wrapped)| sealed::WrappedKey {
            id,
            kek_version,
            wrapped,
        })
        .collect();
    open_with(ring, rows, keys)
}

/// Opens the emails of failure rows with their wrapped data keys (read
/// beside them, as the staff list does with a join).
pub fn open_with(
    ring: &KeyRing,
    mut rows: Vec<FailureRow>,
    keys: Vec<sealed::WrappedKey>,
) -> QueryResult<Vec<FailureRow>> {
    let keys: std::collections::HashMap<String, sealed::WrappedKey> =
        keys.into_iter().map(|k| (k.id.clone(), k)).collect();
    let unreadable = |row: &FailureRow, e: SealError| {
        tracing::error!(reference = %row.reference, key = ?row.data_key_id, error = %e, "a failure's sealed email does not open");
        diesel::result::Error::DeserializationError(Box::new(e))
    };
    // Rows of one day share a key: each is unwrapped once.
    let mut unwrapped: std::collections::HashMap<String, sealed::DataKey> =
        std::collections::HashMap::new();
    for row in &mut rows {
        let (Some(stored), Some(key_id)) = (row.email_sealed.take(), row.data_key_id.clone())
        else {
            continue;
        };
        if !unwrapped.contains_key(&key_id) {
            let wrapped = keys
                .get(&key_id)
                .ok_or_else(|| unreadable(row, SealError::KeyGone(key_id.clone())))?;
            let key = ring.unwrap(wrapped).map_err(|e| unreadable(row, e))?;
            unwrapped.insert(key_id.clone(), key);
        }
        let key = &unwrapped[&key_id];
        let plain = key
            .open(&email_aad(&row.reference), &stored)
            .map_err(|e| unreadable(row, e))?;
        row.email =
            Some(String::from_utf8(plain).map_err(|_| unreadable(row, SealError::Malformed))?);
    }
    Ok(rows)
}
