//! The staff audit log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::schema::staff_audit;

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
