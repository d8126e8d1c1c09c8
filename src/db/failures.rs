//! Rows of the failure log as read back (written by the failure-log service
//! in services/failures.rs). The email address of a row is sealed under the
//! row's own data key; `email` holds its blind index until opened.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::domain::sealed::{self, KeyRing, SealError};

/// A failure as read back, with its resolution by staff.
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
    mut rows: Vec<FailureRow>,
) -> QueryResult<Vec<FailureRow>> {
    use crate::schema::data_keys;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.data_key_id.clone()).collect();
    if ids.is_empty() {
        return Ok(rows);
    }
    let keys: std::collections::HashMap<String, sealed::WrappedKey> = data_keys::table
        .filter(data_keys::id.eq_any(&ids))
        .select((data_keys::id, data_keys::kek_version, data_keys::wrapped))
        .load::<(String, i32, Vec<u8>)>(conn)?
        .into_iter()
        .map(|(id, kek_version, wrapped)| {
            (
                id.clone(),
                sealed::WrappedKey {
                    id,
                    kek_version,
                    wrapped,
                },
            )
        })
        .collect();
    let unreadable = |row: &FailureRow, e: SealError| {
        tracing::error!(reference = %row.reference, key = ?row.data_key_id, error = %e, "a failure's sealed email does not open");
        diesel::result::Error::DeserializationError(Box::new(e))
    };
    for row in &mut rows {
        let (Some(stored), Some(key_id)) = (row.email_sealed.take(), row.data_key_id.clone())
        else {
            continue;
        };
        let wrapped = keys
            .get(&key_id)
            .ok_or_else(|| unreadable(row, SealError::WrongKey(key_id.clone())))?;
        let key = ring.unwrap(wrapped).map_err(|e| unreadable(row, e))?;
        let plain = key
            .open(&email_aad(&row.reference), &stored)
            .map_err(|e| unreadable(row, e))?;
        row.email =
            Some(String::from_utf8(plain).map_err(|_| unreadable(row, SealError::Malformed))?);
    }
    Ok(rows)
}
