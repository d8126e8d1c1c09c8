//! The failure log and the rate limits.
//!
//! Every failure a citizen meets gets a reference code shown on the page
//! and one row here: the reason, the names of the failing fields (never
//! their values), the normalised email, the NIK masked plus a keyed hash (so
//! staff can search by NIK without it being stored in clear), the client IP
//! truncated, and the user agent. When the database itself is what failed,
//! rows wait in a bounded in-memory buffer until the worker can write them.
//!
//! Rate limits count events in the database, so they hold across instances.

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
use crate::error::AppError;
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

/// A failure as written; `FailureRow` adds the staff's resolution.
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

/// Writes a failure row, its email sealed under a data key of its own (the
/// `email` column keeps the address's blind index, for staff search).
pub fn insert(conn: &mut DbConn, ring: &KeyRing, row: &NewFailureRow) -> QueryResult<()> {
    let Some(email) = row.email.as_deref().filter(|_| row.email_sealed.is_none()) else {
        return diesel::insert_into(failures::table)
            .values(row)
            .execute(conn)
            .map(|_| ());
    };
    let (wrapped, key) = crate::db::identity::new_key(ring)?;
    let sealed = NewFailureRow {
        email: Some(crate::db::identity::email_index(ring, email)),
        email_sealed: Some(key.seal(
            &crate::db::failures::email_aad(&row.reference),
            email.as_bytes(),
        )),
        data_key_id: Some(wrapped.id.clone()),
        ..row.clone()
    };
    conn.transaction(|conn| {
        crate::db::keys::insert(conn, &wrapped, row.occurred_at)?;
        diesel::insert_into(failures::table)
            .values(&sealed)
            .execute(conn)
            .map(|_| ())
    })
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

/// Deletes failures older than `cutoff` and rate counters whose window
/// ended more than a day ago.
pub fn purge(conn: &mut DbConn, cutoff: NaiveDateTime, now: NaiveDateTime) -> QueryResult<usize> {
    use crate::schema::data_keys;
    use crate::schema::rate_counters as rc;
    // The rows' data keys first: their emails are shredded with them.
    diesel::delete(
        data_keys::table.filter(
            data_keys::id.eq_any(
                failures::table
                    .filter(failures::occurred_at.lt(cutoff))
                    .filter(failures::data_key_id.is_not_null())
                    .select(failures::data_key_id.assume_not_null()),
            ),
        ),
    )
    .execute(conn)?;
    let deleted =
        diesel::delete(failures::table.filter(failures::occurred_at.lt(cutoff))).execute(conn)?;
    diesel::delete(rc::table.filter(rc::window_end.lt(now - chrono::Duration::days(1))))
        .execute(conn)?;
    Ok(deleted)
}

pub fn find(conn: &mut DbConn, ring: &KeyRing, reference: &str) -> QueryResult<Option<FailureRow>> {
    let found: Option<FailureRow> = failures::table.find(reference).first(conn).optional()?;
    Ok(crate::db::failures::opened(conn, ring, found.into_iter().collect())?.pop())
}

/// What a rate limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    Allowed,
    /// Refused until the window ends, this many seconds from now.
    Refused {
        retry_after_secs: i64,
    },
}

impl Allowance {
    pub fn is_allowed(self) -> bool {
        self == Allowance::Allowed
    }

    /// The first refusal of the two, or allowed.
    fn and(self, other: Allowance) -> Allowance {
        match self {
            Allowance::Allowed => other,
            refused => refused,
        }
    }
}

/// The client's address as a limit key (a keyed hash: no IP stored in clear).
pub fn client_key(log: &FailureLog, client: &Client) -> String {
    client
        .ip
        .map(|ip| log.keyed_hash("ip", &ip.to_string()))
        .unwrap_or_default()
}

/// One more event of `kind` (e.g. "taken", "forgot") for this client and
/// this address, within the hourly limits of both. Keys are keyed hashes:
/// no address or IP is stored in clear.
pub async fn allow_for_client_and_address(
    ctx: &Ctx<'_>,
    client: &Client,
    kind: &'static str,
    email: &str,
) -> Result<Allowance, AppError> {
    let per_ip = ctx.settings.rate_limit_per_ip_hour;
    let per_email = ctx.settings.rate_limit_per_email_hour;
    allow(
        ctx,
        vec![
            (format!("{kind}-ip:{}", client_key(ctx.log, client)), per_ip),
            (
                format!("{kind}-email:{}", ctx.log.keyed_hash("email", email)),
                per_email,
            ),
        ],
    )
    .await
}

/// Counts one event against each `(key, hourly limit)` in turn; the first
/// refusal stops (later keys are not counted).
pub async fn allow(ctx: &Ctx<'_>, limits: Vec<(String, i64)>) -> Result<Allowance, AppError> {
    let clock = ctx.clock.clone();
    ctx.db(move |conn| -> Result<Allowance, AppError> {
        let now = clock.now();
        let hour = chrono::Duration::hours(1);
        let mut decision = Allowance::Allowed;
        for (key, limit) in &limits {
            decision = decision.and(rate_allow(conn, key, now, hour, *limit)?);
            if !decision.is_allowed() {
                break;
            }
        }
        Ok(decision)
    })
    .await
}

/// What the sign-in counters say about one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInGate {
    Open,
    /// Too soon after the last wrong passwords: the next attempt is allowed
    /// in this many seconds (the delay grows with each wrong password).
    Wait {
        retry_after_secs: i64,
    },
    /// Too many wrong passwords for the account (or attempts from the
    /// client address) in the window: paused until it ends.
    Paused {
        retry_after_secs: i64,
    },
}

impl SignInGate {
    /// Seconds until the next attempt may go ahead; `None` when it may now.
    pub fn retry_after(self) -> Option<i64> {
        match self {
            SignInGate::Open => None,
            SignInGate::Wait { retry_after_secs } | SignInGate::Paused { retry_after_secs } => {
                Some(retry_after_secs)
            }
        }
    }
}

/// Wrong passwords for one account that cost nothing; after them each
/// attempt must wait for the one before: 1 s, 2 s, 4 s, ... at most 60 s,
/// until the account's limit pauses sign-in for the rest of its window.
pub const FREE_SIGN_IN_ATTEMPTS: i32 = 3;

/// When the attempt after the `count`-th of a window may come: `None` for
/// at once. (Not `now`: a parallel attempt that read the clock a moment
/// earlier would find itself too soon and be told to wait.)
fn not_before_after(count: i32, now: NaiveDateTime) -> Option<NaiveDateTime> {
    let delay = sign_in_delay(count);
    (delay > chrono::Duration::zero()).then(|| now + delay)
}

/// The wait after the `count`-th attempt of a window.
pub fn sign_in_delay(count: i32) -> chrono::Duration {
    if count < FREE_SIGN_IN_ATTEMPTS {
        return chrono::Duration::zero();
    }
    let doublings = (count - FREE_SIGN_IN_ATTEMPTS).min(6) as u32;
    chrono::Duration::seconds((1i64 << doublings).min(60))
}

/// Sign-in attempts are counted *before* the password is checked (so
/// parallel guesses cannot all reach the hash), per client address (not
/// given back) and per account (given back when the password was right, so
/// only wrong ones add up). `scope` is "citizen" or "staff".
pub async fn reserve_sign_in(
    ctx: &Ctx<'_>,
    client: &Client,
    scope: &'static str,
    email: &str,
    per_account: i64,
    window: chrono::Duration,
) -> Result<SignInGate, AppError> {
    let ip_key = format!("signin-ip:{}", client_key(ctx.log, client));
    let account_key = sign_in_account_key(ctx.log, scope, email);
    let per_ip = ctx.settings.signin_per_ip_hour;
    let clock = ctx.clock.clone();
    ctx.db(move |conn| -> Result<SignInGate, AppError> {
        let now = clock.now();
        let by_ip = rate_allow(conn, &ip_key, now, chrono::Duration::hours(1), per_ip)?;
        if let Allowance::Refused { retry_after_secs } = by_ip {
            return Ok(SignInGate::Paused { retry_after_secs });
        }
        Ok(paced_allow(conn, &account_key, now, window, per_account)?)
    })
    .await
}

/// [`rate_allow`] with growing delays: besides the limit per window, each
/// attempt after the free ones must come [`sign_in_delay`] after the one
/// before. Read, then counted by a conditional update on the count read
/// (compare-and-set), so of parallel attempts exactly one passes per step.
pub fn paced_allow(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: chrono::Duration,
    limit: i64,
) -> QueryResult<SignInGate> {
    use crate::schema::rate_counters as rc;
    let limit = limit.clamp(0, i64::from(i32::MAX)) as i32;
    let paused = |end: NaiveDateTime| SignInGate::Paused {
        retry_after_secs: (end - now).num_seconds().max(1),
    };
    if limit == 0 {
        return Ok(paused(now + window));
    }
    for _ in 0..8 {
        let row: Option<(NaiveDateTime, i32, Option<NaiveDateTime>)> = rc::table
            .find(key)
            .select((rc::window_end, rc::count, rc::not_before))
            .first(conn)
            .optional()?;
        match row {
            None => {
                if first_event(conn, key, now + window, not_before_after(1, now))? {
                    return Ok(SignInGate::Open);
                }
            }
            Some((end, _, _)) if end <= now => {
                let restarted = crate::db::retry_busy(|| {
                    diesel::update(rc::table.find(key).filter(rc::window_end.eq(end)))
                        .set((
                            rc::count.eq(1),
                            rc::window_end.eq(now + window),
                            rc::not_before.eq(not_before_after(1, now)),
                        ))
                        .execute(conn)
                })?;
                if restarted == 1 {
                    return Ok(SignInGate::Open);
                }
            }
            Some((end, count, _)) if count >= limit => return Ok(paused(end)),
            Some((_, _, Some(not_before))) if not_before > now => {
                let wait = (not_before - now).num_milliseconds();
                return Ok(SignInGate::Wait {
                    retry_after_secs: ((wait + 999) / 1000).max(1),
                });
            }
            Some((end, count, _)) => {
                let counted = crate::db::retry_busy(|| {
                    diesel::update(
                        rc::table
                            .find(key)
                            .filter(rc::window_end.eq(end))
                            .filter(rc::count.eq(count)),
                    )
                    .set((
                        rc::count.eq(count + 1),
                        rc::not_before.eq(not_before_after(count + 1, now)),
                    ))
                    .execute(conn)
                })?;
                if counted == 1 {
                    return Ok(SignInGate::Open);
                }
            }
        }
    }
    // Eight rounds of races on one key: a moment's wait.
    Ok(SignInGate::Wait {
        retry_after_secs: 1,
    })
}

/// Gives back the account's attempt after a right password (or code), and
/// lifts the wait the wrong ones before it had set.
pub async fn refund_sign_in(
    ctx: &Ctx<'_>,
    scope: &'static str,
    email: &str,
) -> Result<(), AppError> {
    use crate::schema::rate_counters as rc;
    let key = sign_in_account_key(ctx.log, scope, email);
    ctx.db(move |conn| {
        crate::db::retry_busy(|| {
            diesel::update(rc::table.find(&key).filter(rc::count.gt(0)))
                .set((
                    rc::count.eq(rc::count - 1),
                    rc::not_before.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)
        })
    })
    .await
    .map(|_| ())
}

fn sign_in_account_key(log: &FailureLog, scope: &str, email: &str) -> String {
    let email = email.trim().to_lowercase();
    format!("signin-{scope}:{}", log.keyed_hash("email", &email))
}

/// Counts an event against a limit of `limit` per `window` (which starts at
/// a key's first event): checked and counted by one conditional update, so
/// parallel requests on any number of instances never get past the limit.
/// Nothing is counted when refused.
pub fn rate_allow(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: chrono::Duration,
    limit: i64,
) -> QueryResult<Allowance> {
    use crate::schema::rate_counters as rc;
    let limit = limit.clamp(0, i64::from(i32::MAX)) as i32;
    for _ in 0..4 {
        // Within the window and below the limit: count it.
        let counted = crate::db::retry_busy(|| {
            diesel::update(
                rc::table
                    .find(key)
                    .filter(rc::window_end.gt(now))
                    .filter(rc::count.lt(limit)),
            )
            .set(rc::count.eq(rc::count + 1))
            .execute(conn)
        })?;
        if counted == 1 {
            return Ok(Allowance::Allowed);
        }
        // The window is over: a new one starts with this event.
        let restarted = crate::db::retry_busy(|| {
            diesel::update(rc::table.find(key).filter(rc::window_end.le(now)))
                .set((rc::count.eq(1), rc::window_end.eq(now + window)))
                .execute(conn)
        })?;
        if restarted == 1 {
            return Ok(if limit >= 1 {
                Allowance::Allowed
            } else {
                Allowance::Refused {
                    retry_after_secs: window.num_seconds(),
                }
            });
        }
        let row: Option<(NaiveDateTime, i32)> = rc::table
            .find(key)
            .select((rc::window_end, rc::count))
            .first(conn)
            .optional()?;
        match row {
            // At the limit within the window.
            Some((end, count)) if end > now && count >= limit => {
                return Ok(Allowance::Refused {
                    retry_after_secs: (end - now).num_seconds().max(1),
                });
            }
            // Made by a concurrent first event after our update looked, or
            // ended between our two updates: go round again and count.
            Some(_) => continue,
            None => {}
        }
        if first_event(conn, key, now + window, None)? {
            return Ok(if limit >= 1 {
                Allowance::Allowed
            } else {
                Allowance::Refused {
                    retry_after_secs: window.num_seconds(),
                }
            });
        }
    }
    // Four rounds of races on one key: count it as refused for a moment.
    Ok(Allowance::Refused {
        retry_after_secs: 1,
    })
}

/// Counts a key's first event (a new row, count 1). `false` when a
/// concurrent first event made the row first (a unique violation): the
/// caller then goes round again and counts against that row.
fn first_event(
    conn: &mut DbConn,
    key: &str,
    window_end: NaiveDateTime,
    not_before: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    use crate::schema::rate_counters as rc;
    let inserted = crate::db::retry_busy(|| {
        diesel::insert_into(rc::table)
            .values((
                rc::key.eq(key),
                rc::window_end.eq(window_end),
                rc::count.eq(1),
                rc::not_before.eq(not_before),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e),
    }
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
