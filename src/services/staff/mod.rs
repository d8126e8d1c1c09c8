//! The support staff console's services: signing in (password, then the
//! second factor) and the staff session records (`sign_in`), the failure
//! log as staff read and act on it (`failures`), and the audit log every
//! sign-in, view and action is written to. Who is signed in (the cookie)
//! is the web layer's business.

pub mod failures;
pub mod sign_in;

use chrono::NaiveDateTime;

use crate::db::staff as staff_db;
use crate::error::AppError;
use crate::services::Ctx;

pub use crate::db::staff::AuditEntry;

/// Writes one line of the audit log.
pub async fn audit(
    ctx: &Ctx<'_>,
    staff_email: &str,
    action: &str,
    target: String,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let (email, action) = (staff_email.to_string(), action.to_string());
    ctx.db(move |conn| staff_db::audit(conn, &email, &action, &target, now))
        .await
}

/// The newest `limit` lines of the audit log.
pub async fn recent_audit(ctx: &Ctx<'_>, limit: i64) -> Result<Vec<AuditEntry>, AppError> {
    ctx.db(move |conn| staff_db::recent_audit(conn, limit))
        .await
}
