//! The incident notice of the public status page (`status_notices`), and
//! what the status page measures in the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::{mail_outbox, status_notices};

#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Notice {
    pub id: String,
    pub text_id: String,
    pub text_en: String,
    pub started_at: NaiveDateTime,
    pub started_by: String,
    pub ended_at: Option<NaiveDateTime>,
    pub ended_by: Option<String>,
}

/// The notice that is on, if any (the newest, should two ever be).
pub fn current(conn: &mut DbConn) -> QueryResult<Option<Notice>> {
    status_notices::table
        .filter(status_notices::ended_at.is_null())
        .order(status_notices::started_at.desc())
        .first(conn)
        .optional()
}

/// The latest notices, on or ended, newest first.
pub fn recent(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<Notice>> {
    status_notices::table
        .order(status_notices::started_at.desc())
        .limit(limit)
        .load(conn)
}

/// Posts a notice, ending the one that was on (one at a time), and audits
/// both in the same transaction.
pub fn post(
    conn: &mut DbConn,
    text_id: &str,
    text_en: &str,
    staff_email: &str,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    conn.transaction(|conn| {
        end_open(conn, staff_email, now)?;
        diesel::insert_into(status_notices::table)
            .values((
                status_notices::id.eq(&id),
                status_notices::text_id.eq(text_id),
                status_notices::text_en.eq(text_en),
                status_notices::started_at.eq(now),
                status_notices::started_by.eq(staff_email),
            ))
            .execute(conn)?;
        crate::db::staff::audit(conn, staff_email, "status_notice_post", &id, now)
    })?;
    Ok(id)
}

/// Ends the notice that is on; false when none was.
pub fn end(conn: &mut DbConn, staff_email: &str, now: NaiveDateTime) -> QueryResult<bool> {
    conn.transaction(|conn| end_open(conn, staff_email, now))
}

fn end_open(conn: &mut DbConn, staff_email: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let open: Vec<String> = status_notices::table
        .filter(status_notices::ended_at.is_null())
        .select(status_notices::id)
        .load(conn)?;
    for id in &open {
        diesel::update(status_notices::table.find(id))
            .set((
                status_notices::ended_at.eq(now),
                status_notices::ended_by.eq(staff_email),
            ))
            .execute(conn)?;
        crate::db::staff::audit(conn, staff_email, "status_notice_end", id, now)?;
    }
    Ok(!open.is_empty())
}

/// When the oldest mail still waiting to be delivered was queued.
pub fn oldest_pending_mail(conn: &mut DbConn) -> QueryResult<Option<NaiveDateTime>> {
    mail_outbox::table
        .filter(mail_outbox::status.eq(crate::db::outbox::STATUS_PENDING))
        .select(diesel::dsl::min(mail_outbox::created_at))
        .first(conn)
}
