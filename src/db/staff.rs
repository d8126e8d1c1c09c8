//! Support staff: accounts, sign-in lockout, audit, and the failure log as
//! staff see it (filters, keyset pagination, notes, resolution, statistics).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::failures::FailureRow;
use super::{DbConn, MultiBackend};
use crate::schema::{failure_notes, failures, staff, staff_audit, staff_recovery_codes};

/// Failed sign-ins before an account is locked, and for how long.
pub const MAX_FAILED_LOGINS: i32 = 5;
pub const LOCK_MINUTES: i64 = 15;

#[derive(Debug, Clone, Queryable)]
pub struct Staff {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub disabled_at: Option<NaiveDateTime>,
    pub failed_logins: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub session_epoch: i64,
    pub created_at: NaiveDateTime,
    /// The TOTP secret (base32) once the second factor is enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
}

impl Staff {
    pub fn is_locked(&self, now: NaiveDateTime) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

pub fn create(
    conn: &mut DbConn,
    email: &str,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(staff::table)
        .values((
            staff::id.eq(uuid::Uuid::new_v4().to_string()),
            staff::email.eq(email),
            staff::password_hash.eq(password_hash),
            staff::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<Staff>> {
    staff::table.order(staff::email.asc()).load(conn)
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<Staff>> {
    staff::table
        .filter(staff::email.eq(email))
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<Staff>> {
    staff::table.find(id).first(conn).optional()
}

/// Disables an account and ends its sessions. `false` when there is none.
pub fn disable(conn: &mut DbConn, email: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let Some(found) = find_by_email(conn, email)? else {
        return Ok(false);
    };
    diesel::update(staff::table.find(&found.id))
        .set((
            staff::disabled_at.eq(now),
            staff::session_epoch.eq(staff::session_epoch + 1),
        ))
        .execute(conn)?;
    super::sessions::revoke_all(conn, super::sessions::KIND_STAFF, &found.id, now)?;
    Ok(true)
}

/// Counts a failed sign-in; the fifth in a row locks the account.
pub fn login_failed(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    super::retry_busy(|| login_failed_once(conn, id, now))
}

fn login_failed_once(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    conn.transaction(|conn| {
        let failed: i32 = staff::table
            .find(id)
            .select(staff::failed_logins)
            .first(conn)?;
        let failed = failed + 1;
        let locked =
            (failed >= MAX_FAILED_LOGINS).then(|| now + chrono::Duration::minutes(LOCK_MINUTES));
        diesel::update(staff::table.find(id))
            .set((
                staff::failed_logins.eq(if locked.is_some() { 0 } else { failed }),
                staff::locked_until.eq(locked),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

pub fn login_succeeded(conn: &mut DbConn, id: &str) -> QueryResult<()> {
    diesel::update(staff::table.find(id))
        .set((
            staff::failed_logins.eq(0),
            staff::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Stores a second factor and its recovery codes (hashes), replacing any
/// earlier codes. With `only_if_none`, only when none is enrolled yet (two
/// enrolment pages submitted at once: the first wins). `step` is the TOTP
/// step just used to confirm it, so that code cannot sign in again.
pub fn enrol_second_factor(
    conn: &mut DbConn,
    id: &str,
    secret: &str,
    step: Option<i64>,
    code_hashes: &[String],
    only_if_none: bool,
) -> QueryResult<bool> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let set = (
                staff::totp_secret.eq(secret),
                staff::totp_last_step.eq(step),
            );
            let updated = if only_if_none {
                diesel::update(staff::table.find(id).filter(staff::totp_secret.is_null()))
                    .set(set)
                    .execute(conn)?
            } else {
                diesel::update(staff::table.find(id))
                    .set(set)
                    .execute(conn)?
            };
            if updated == 0 {
                return Ok(false);
            }
            diesel::delete(
                staff_recovery_codes::table.filter(staff_recovery_codes::staff_id.eq(id)),
            )
            .execute(conn)?;
            for hash in code_hashes {
                diesel::insert_into(staff_recovery_codes::table)
                    .values((
                        staff_recovery_codes::staff_id.eq(id),
                        staff_recovery_codes::code_hash.eq(hash),
                    ))
                    .execute(conn)?;
            }
            Ok(true)
        })
    })
}

/// Accepts a TOTP code's step once: a conditional update, so the same code
/// replayed, or sent twice at once to two instances, signs in only once.
pub fn accept_totp_step(conn: &mut DbConn, id: &str, step: i64) -> QueryResult<bool> {
    super::retry_busy(|| {
        diesel::update(
            staff::table.find(id).filter(
                staff::totp_last_step
                    .is_null()
                    .or(staff::totp_last_step.lt(step)),
            ),
        )
        .set(staff::totp_last_step.eq(step))
        .execute(conn)
    })
    .map(|n| n == 1)
}

/// Uses up a recovery code (by its hash); `false` when it is not one of
/// this staff member's unused codes.
pub fn use_recovery_code(
    conn: &mut DbConn,
    id: &str,
    code_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    super::retry_busy(|| {
        diesel::update(
            staff_recovery_codes::table
                .find((id, code_hash))
                .filter(staff_recovery_codes::used_at.is_null()),
        )
        .set(staff_recovery_codes::used_at.eq(now))
        .execute(conn)
    })
    .map(|n| n == 1)
}

/// Unused recovery codes left.
pub fn recovery_codes_left(conn: &mut DbConn, id: &str) -> QueryResult<i64> {
    staff_recovery_codes::table
        .filter(staff_recovery_codes::staff_id.eq(id))
        .filter(staff_recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// Removes a staff member's second factor (a lost phone): the next sign-in
/// enrols a new one. Their sessions end. `false` when there is no account.
pub fn reset_second_factor(
    conn: &mut DbConn,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let Some(found) = find_by_email(conn, email)? else {
        return Ok(false);
    };
    conn.transaction(|conn| {
        diesel::update(staff::table.find(&found.id))
            .set((
                staff::totp_secret.eq(None::<String>),
                staff::totp_last_step.eq(None::<i64>),
                staff::session_epoch.eq(staff::session_epoch + 1),
            ))
            .execute(conn)?;
        diesel::delete(
            staff_recovery_codes::table.filter(staff_recovery_codes::staff_id.eq(&found.id)),
        )
        .execute(conn)?;
        super::sessions::revoke_all(conn, super::sessions::KIND_STAFF, &found.id, now)
    })?;
    Ok(true)
}

#[derive(Debug, Clone, Queryable)]
pub struct AuditEntry {
    pub id: String,
    pub at: NaiveDateTime,
    pub staff_email: String,
    pub action: String,
    pub target: String,
}

pub fn audit(
    conn: &mut DbConn,
    staff_email: &str,
    action: &str,
    target: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(staff_audit::table)
        .values((
            staff_audit::id.eq(uuid::Uuid::new_v4().to_string()),
            staff_audit::at.eq(now),
            staff_audit::staff_email.eq(staff_email),
            staff_audit::action.eq(action),
            staff_audit::target.eq(target),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn recent_audit(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditEntry>> {
    staff_audit::table
        .order((staff_audit::at.desc(), staff_audit::id.desc()))
        .limit(limit)
        .load(conn)
}

/// What staff filter the failure log by. Each search matches exactly, on
/// an indexed column: a reference code, an email, or a NIK's keyed hash.
#[derive(Debug, Clone, Default)]
pub struct FailureFilter {
    pub reason: Option<String>,
    pub from: Option<NaiveDateTime>,
    /// Exclusive.
    pub to: Option<NaiveDateTime>,
    pub reference: Option<String>,
    pub email: Option<String>,
    pub nik_hash: Option<String>,
}

/// The position after the last row of a page: newest first, so the next
/// page holds what is older than this. Rows arriving meanwhile are newer
/// and never shift the pages already seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: NaiveDateTime,
    pub reference: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.at.and_utc().timestamp_micros(),
            self.reference
        )
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, reference) = text.split_once('_')?;
        let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        Some(Cursor {
            at,
            reference: reference.to_string(),
        })
    }
}

fn filtered(filter: &FailureFilter) -> failures::BoxedQuery<'static, MultiBackend> {
    let mut query = failures::table.into_boxed::<MultiBackend>();
    if let Some(reason) = &filter.reason {
        query = query.filter(failures::reason.eq(reason.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(failures::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(failures::occurred_at.lt(to));
    }
    if let Some(reference) = &filter.reference {
        query = query.filter(failures::reference.eq(reference.clone()));
    }
    if let Some(email) = &filter.email {
        query = query.filter(failures::email.eq(email.clone()));
    }
    if let Some(hash) = &filter.nik_hash {
        query = query.filter(failures::nik_hash.eq(hash.clone()));
    }
    query
}

/// One page of failures, newest first, after `cursor`.
pub fn page(
    conn: &mut DbConn,
    filter: &FailureFilter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<FailureRow>> {
    let mut query = filtered(filter);
    if let Some(c) = cursor {
        // (occurred_at, reference) < (at, reference), written so both
        // planners see `occurred_at <= at` as the start of an index range
        // instead of scanning from the newest row down to the cursor.
        query = query.filter(
            failures::occurred_at.le(c.at).and(
                failures::occurred_at
                    .lt(c.at)
                    .or(failures::reference.lt(c.reference.clone())),
            ),
        );
    }
    query
        .order((failures::occurred_at.desc(), failures::reference.desc()))
        .limit(limit)
        .load(conn)
}

/// Everything recorded for the same email or NIK, newest first.
pub fn related(
    conn: &mut DbConn,
    email: Option<&str>,
    nik_hash: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<FailureRow>> {
    let mut rows: Vec<FailureRow> = Vec::new();
    if let Some(email) = email {
        rows.extend(
            failures::table
                .filter(failures::email.eq(email))
                .order(failures::occurred_at.desc())
                .limit(limit)
                .load::<FailureRow>(conn)?,
        );
    }
    if let Some(hash) = nik_hash {
        rows.extend(
            failures::table
                .filter(failures::nik_hash.eq(hash))
                .order(failures::occurred_at.desc())
                .limit(limit)
                .load::<FailureRow>(conn)?,
        );
    }
    rows.sort_by(|a, b| (b.occurred_at, &b.reference).cmp(&(a.occurred_at, &a.reference)));
    rows.dedup_by(|a, b| a.reference == b.reference);
    rows.truncate(limit as usize);
    Ok(rows)
}

#[derive(Debug, Clone, Queryable)]
pub struct Note {
    pub id: String,
    pub reference: String,
    pub staff_email: String,
    pub note: String,
    pub created_at: NaiveDateTime,
}

pub fn add_note(
    conn: &mut DbConn,
    reference: &str,
    staff_email: &str,
    note: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(failure_notes::table)
        .values((
            failure_notes::id.eq(uuid::Uuid::new_v4().to_string()),
            failure_notes::reference.eq(reference),
            failure_notes::staff_email.eq(staff_email),
            failure_notes::note.eq(note),
            failure_notes::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn notes(conn: &mut DbConn, reference: &str) -> QueryResult<Vec<Note>> {
    failure_notes::table
        .filter(failure_notes::reference.eq(reference))
        .order(failure_notes::created_at.asc())
        .load(conn)
}

pub fn resolve(
    conn: &mut DbConn,
    reference: &str,
    staff_email: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(failures::table.find(reference))
        .set((
            failures::resolved_at.eq(now),
            failures::resolved_by.eq(staff_email),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub day: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub reason: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// Failures per day and reason in `[from, to)`, days in WIB (UTC+7), the
/// time staff read everywhere. The day expression differs per backend;
/// this is the one place that knows.
pub fn counts_by_day(
    conn: &mut DbConn,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<DayCount>> {
    use diesel::sql_types::Timestamp;
    match conn {
        DbConn::Postgres(pg) => diesel::sql_query(
            "SELECT to_char(occurred_at + interval '7 hours', 'YYYY-MM-DD') AS day, reason, COUNT(*) AS n FROM failures \
             WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(pg),
        DbConn::Sqlite(lite) => diesel::sql_query(
            "SELECT substr(datetime(occurred_at, '+7 hours'), 1, 10) AS day, reason, COUNT(*) AS n FROM failures \
             WHERE occurred_at >= ? AND occurred_at < ? GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(lite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = chrono::DateTime::from_timestamp_micros(1_795_546_333_123_456)
            .unwrap()
            .naive_utc();
        let cursor = Cursor {
            at,
            reference: "DFT-7K3Q-9XWZ".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("garbage"), None);
    }
}
