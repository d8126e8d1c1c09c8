//! Staff accounts: creation, sign-in lockout, second factor and recovery codes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::{staff, staff_recovery_codes};

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
    crate::db::sessions::revoke_all(conn, crate::db::sessions::KIND_STAFF, &found.id, now)?;
    Ok(true)
}

/// Counts a failed sign-in; the fifth in a row locks the account.
pub fn login_failed(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    crate::db::retry_busy(|| login_failed_once(conn, id, now))
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
    crate::db::retry_busy(|| {
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

/// Replaces a secret stored in clear (before sealing) by its sealed form,
/// unless it changed meanwhile.
pub fn seal_second_factor(
    conn: &mut DbConn,
    id: &str,
    clear: &str,
    sealed: &str,
) -> QueryResult<bool> {
    crate::db::retry_busy(|| {
        diesel::update(staff::table.find(id).filter(staff::totp_secret.eq(clear)))
            .set(staff::totp_secret.eq(sealed))
            .execute(conn)
    })
    .map(|n| n == 1)
}

/// Accepts a TOTP code's step once: a conditional update, so the same code
/// replayed, or sent twice at once to two instances, signs in only once.
pub fn accept_totp_step(conn: &mut DbConn, id: &str, step: i64) -> QueryResult<bool> {
    crate::db::retry_busy(|| {
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
    crate::db::retry_busy(|| {
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
        crate::db::sessions::revoke_all(conn, crate::db::sessions::KIND_STAFF, &found.id, now)
    })?;
    Ok(true)
}
