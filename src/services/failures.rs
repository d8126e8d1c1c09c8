//! The failure log and the rate limits.
//!
//! Every failure a citizen meets gets a reference code shown on the page
//! and one row here: the reason, the names of the failing fields (never
//! their values), the normalised email, the NIK masked plus a keyed hash (so
//! staff can search by NIK without it being stored in clear), the client IP
//! truncated, and the user agent. When the database itself is what failed,
//! rows wait in a bounded in-memory buffer until the worker can write them.
//!
//! The rate limits and counters are in `limits.rs`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Ctx;
use crate::db::{DbConn, Pool};
use crate::domain::mask_nik;
use crate::domain::sealed::KeyRing;
use crate::schema::failures;

/// Who met a failure, as far as the web layer tells: the client's address
/// (already resolved through a trusted proxy or not), user agent and path.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub path: String,
}

pub mod reason {
    pub const VALIDATION: &str = "validation";
    pub const UPLOAD_REJECTED: &str = "upload_rejected";
    pub const EMAIL_TAKEN: &str = "email_taken";
    pub const NIK_TAKEN: &str = "nik_taken";
    pub const EMAIL_PENDING: &str = "email_pending";
    pub const STALE_FORM: &str = "stale_form";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
    pub const INTERNAL_ERROR: &str = "internal_error";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const LINK_EXPIRED: &str = "link_expired";
    pub const LINK_SUPERSEDED: &str = "link_superseded";
    pub const LINK_UNKNOWN: &str = "link_unknown";
    pub const SIGN_IN_FAILED: &str = "sign_in_failed";
    pub const RESET_LINK_INVALID: &str = "reset_link_invalid";
    /// A registration's link opened after another registration with the
    /// same NIK had finished first.
    pub const NIK_TAKEN_AT_LINK: &str = "nik_taken_at_link";
    /// A registration cancelled through its mail's "not me" link.
    pub const NOT_ME: &str = "not_me";
    /// An account secured through a mail's "not me" link.
    pub const NOT_ME_ACCOUNT: &str = "not_me_account";
    /// A "someone else used my NIK" report (its case: `services/cases.rs`).
    pub const NIK_REPORTED: &str = "nik_reported";

    /// Problems signing in or with a mailed link, which are not failed
    /// registrations: the statistics count them apart.
    pub const ACCESS: &[&str] = &[
        LINK_EXPIRED,
        LINK_SUPERSEDED,
        LINK_UNKNOWN,
        SIGN_IN_FAILED,
        RESET_LINK_INVALID,
    ];

    /// Every reason, for filters and documentation.
    pub const ALL: &[&str] = &[
        VALIDATION,
        UPLOAD_REJECTED,
        EMAIL_TAKEN,
        NIK_TAKEN,
        EMAIL_PENDING,
        STALE_FORM,
        RATE_LIMITED,
        SERVICE_UNAVAILABLE,
        INTERNAL_ERROR,
        BAD_REQUEST,
        LINK_EXPIRED,
        LINK_SUPERSEDED,
        LINK_UNKNOWN,
        SIGN_IN_FAILED,
        RESET_LINK_INVALID,
        NIK_TAKEN_AT_LINK,
        NOT_ME,
        NOT_ME_ACCOUNT,
        NIK_REPORTED,
    ];
}

/// What is known about one failure.
#[derive(Default)]
pub struct Failure {
    pub reason: &'static str,
    pub fields: Vec<&'static str>,
    pub email: Option<String>,
    /// The NIK as typed; only its mask and keyed hash are kept.
    pub nik: Option<String>,
    /// The kind and length of an email field's value that is no address.
    pub email_shape: Option<String>,
}

/// "digits:16" or "text:23" (characters), or `None` for an empty value.
fn shape_of(typed: &str) -> Option<String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return None;
    }
    let count = typed.chars().count();
    let digits = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .all(|c| c.is_ascii_digit());
    Some(if digits {
        format!(
            "digits:{}",
            typed.chars().filter(char::is_ascii_digit).count()
        )
    } else {
        format!("text:{count}")
    })
}

impl Failure {
    pub fn new(reason: &'static str) -> Self {
        Failure {
            reason,
            ..Default::default()
        }
    }

    /// What was typed as the email address: kept only when it is one;
    /// anything else (a NIK or a password in the wrong field) only as its
    /// kind and length.
    pub fn email(mut self, email: &str) -> Self {
        match crate::domain::Email::parse(email) {
            Ok(parsed) => self.email = Some(parsed.as_str().to_string()),
            Err(_) => self.email_shape = shape_of(email),
        }
        self
    }

    pub fn nik(mut self, nik: &str) -> Self {
        let digits = crate::domain::strip_nik(nik);
        if !digits.is_empty() {
            self.nik = Some(digits);
        }
        self
    }

    pub fn fields(mut self, fields: Vec<&'static str>) -> Self {
        self.fields = fields;
        self
    }
}

/// A failure as written; `FailureRow` (`db/failures.rs`) repeats these
/// fields on purpose and adds the staff's resolution: diesel writes a row
/// from an `Insertable` and reads one, in the table's column order, into
/// a `Queryable` of its own.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = failures)]
pub struct NewFailureRow {
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
    pub email_shape: Option<String>,
    /// Set when written (`insert`): the email sealed, `email` its index.
    pub email_sealed: Option<Vec<u8>>,
    pub data_key_id: Option<String>,
}

pub use crate::db::failures::FailureRow;

const BUFFER_LIMIT: usize = 10_000;

/// Keyed hashing and the buffer of rows not yet written.
pub struct FailureLog {
    key: Vec<u8>,
    buffer: Mutex<VecDeque<NewFailureRow>>,
}

impl FailureLog {
    pub fn new(secret: &[u8]) -> Self {
        FailureLog {
            key: secret.to_vec(),
            buffer: Mutex::new(VecDeque::new()),
        }
    }

    /// A keyed hash (HMAC-SHA256) of a value, hex; the same value always
    /// gives the same hash with the same EMETERAI_SECRET_KEY.
    pub fn keyed_hash(&self, purpose: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn nik_hash(&self, nik: &str) -> String {
        self.keyed_hash("nik", &crate::domain::strip_nik(nik))
    }

    fn buffer(&self, row: NewFailureRow) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() >= BUFFER_LIMIT {
            buffer.pop_front();
        }
        buffer.push_back(row);
    }

    fn take_buffered(&self) -> Vec<NewFailureRow> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.drain(..).collect()
    }

    pub fn buffered(&self) -> usize {
        self.buffer.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// IPv4 to its /24, IPv6 to its /48: enough to see a pattern, not a person.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::", s[0], s[1], s[2])
        }
    }
}

fn row_for(ctx: &Ctx<'_>, client: &Client, reference: &str, failure: Failure) -> NewFailureRow {
    let log = ctx.log;
    NewFailureRow {
        reference: reference.to_string(),
        occurred_at: ctx.clock.now(),
        reason: failure.reason.to_string(),
        fields: failure.fields.join(","),
        email: failure.email,
        nik_masked: failure.nik.as_deref().map(mask_nik),
        nik_hash: failure.nik.as_deref().map(|n| log.nik_hash(n)),
        client_ip: client.ip.map(truncate_ip),
        user_agent: client
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(200).collect()),
        path: client.path.chars().take(200).collect(),
        email_shape: failure.email_shape,
        email_sealed: None,
        data_key_id: None,
    }
}

/// Records a failure under `reference`. Never fails: when the database
/// cannot take the row now, it is kept for the worker to write later.
pub async fn record_as(ctx: &Ctx<'_>, client: &Client, reference: &str, failure: Failure) {
    let reason = failure.reason;
    let row = row_for(ctx, client, reference, failure);
    tracing::info!(reference, reason, fields = %row.fields, "failure recorded");
    let pool = ctx.pool.clone();
    let keys = ctx.keys.clone();
    let attempt = row.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut conn = pool
            .get_timeout(std::time::Duration::from_millis(500))
            .map_err(|e| e.to_string())?;
        insert(&mut conn, &keys, &attempt).map_err(|e| e.to_string())
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        ctx.log.buffer(row);
    }
}

/// Records a failure with a new reference code starting with `prefix`.
pub async fn record(ctx: &Ctx<'_>, client: &Client, prefix: &str, failure: Failure) -> String {
    let reference = crate::reference::new_reference(prefix);
    record_as(ctx, client, &reference, failure).await;
    reference
}

/// Writes a failure row, its email sealed under its day's data key (the
/// `email` column keeps the address's blind index, for staff search).
pub fn insert(conn: &mut DbConn, ring: &KeyRing, row: &NewFailureRow) -> QueryResult<()> {
    let Some(email) = row.email.as_deref().filter(|_| row.email_sealed.is_none()) else {
        return diesel::insert_into(failures::table)
            .values(row)
            .execute(conn)
            .map(|_| ());
    };
    let key = crate::db::failures::day_key(conn, ring, row.occurred_at)?;
    let sealed = NewFailureRow {
        email: Some(crate::db::identity::email_index(ring, email)),
        email_sealed: Some(key.seal(
            &crate::db::failures::email_aad(&row.reference),
            email.as_bytes(),
        )),
        data_key_id: Some(key.id().to_string()),
        ..row.clone()
    };
    diesel::insert_into(failures::table)
        .values(&sealed)
        .execute(conn)
        .map(|_| ())
}

/// Writes rows that waited in memory. Returns how many were written.
pub fn flush_buffered(pool: &Pool, log: &FailureLog, ring: &KeyRing) -> usize {
    let rows = log.take_buffered();
    if rows.is_empty() {
        return 0;
    }
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(_) => {
            rows.into_iter().for_each(|r| log.buffer(r));
            return 0;
        }
    };
    let mut written = 0;
    let mut rows = rows.into_iter();
    for row in rows.by_ref() {
        match insert(&mut conn, ring, &row) {
            Ok(()) => written += 1,
            // Already written (a retry after a partial flush).
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            Err(_) => {
                log.buffer(row);
                break;
            }
        }
    }
    rows.for_each(|r| log.buffer(r));
    written
}

/// Deletes failures older than `cutoff` (and, `limits::purge`, rate
/// counters whose window ended more than a day ago).
pub fn purge(conn: &mut DbConn, cutoff: NaiveDateTime, now: NaiveDateTime) -> QueryResult<usize> {
    use crate::schema::data_keys;
    crate::db::retry_busy(|| {
        conn.transaction(|conn| {
            let keys: Vec<String> = failures::table
                .filter(failures::occurred_at.lt(cutoff))
                .filter(failures::data_key_id.is_not_null())
                .select(failures::data_key_id.assume_not_null())
                .distinct()
                .load(conn)?;
            let deleted = diesel::delete(failures::table.filter(failures::occurred_at.lt(cutoff)))
                .execute(conn)?;
            // Their data keys go with them (the emails are shredded), once
            // no row left names them: a day's key when its last row goes.
            diesel::delete(
                data_keys::table
                    .filter(data_keys::id.eq_any(&keys))
                    .filter(diesel::dsl::not(
                        data_keys::id.eq_any(
                            failures::table
                                .filter(failures::data_key_id.is_not_null())
                                .select(failures::data_key_id.assume_not_null()),
                        ),
                    )),
            )
            .execute(conn)?;
            Ok::<_, diesel::result::Error>(deleted)
        })
    })
    .and_then(|deleted| {
        super::limits::purge(conn, now)?;
        Ok(deleted)
    })
}

pub fn find(conn: &mut DbConn, ring: &KeyRing, reference: &str) -> QueryResult<Option<FailureRow>> {
    let found: Option<FailureRow> = failures::table.find(reference).first(conn).optional()?;
    Ok(crate::db::failures::opened(conn, ring, found.into_iter().collect())?.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_label() {
        use crate::i18n::{Lang, reason_label};
        for code in reason::ALL {
            assert_ne!(reason_label(code, Lang::Id), "Lainnya", "{code}");
            assert_ne!(reason_label(code, Lang::En), "Other", "{code}");
        }
    }

    #[test]
    fn addresses_are_truncated() {
        assert_eq!(truncate_ip("203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(
            truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap()),
            "2001:db8:85a3::"
        );
    }

    #[test]
    fn nik_hash_is_keyed_and_ignores_separators() {
        let a = FailureLog::new(b"first secret key of at least thirty-two bytes");
        let b = FailureLog::new(b"another secret key of at least thirty-two bytes");
        assert_eq!(
            a.nik_hash("3201011708900003"),
            a.nik_hash("3201 0117 0890 0003")
        );
        assert_ne!(
            a.nik_hash("3201011708900003"),
            b.nik_hash("3201011708900003")
        );
        assert_eq!(a.nik_hash("3201011708900003").len(), 64);
    }
}
