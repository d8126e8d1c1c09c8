//! What is kept for how long: registrations never confirmed in time,
//! abandoned draft photos, ended sessions, old failure-log rows and closed
//! cases are
//! deleted by each instance's worker (README, "Retention").

use chrono::{Duration, NaiveDateTime};

use crate::error::AppError;
use crate::mail::DRAFT_HOURS;
use crate::services::Ctx;

/// Deletes sessions ended over a day ago, registrations never confirmed
/// within EMETERAI_UNVERIFIED_TTL_HOURS and draft photos older than
/// `DRAFT_HOURS`. Returns the registrations and drafts deleted.
pub async fn purge_expired(ctx: &Ctx<'_>, now: NaiveDateTime) -> Result<(usize, usize), AppError> {
    let ttl = Duration::hours(i64::from(ctx.settings.unverified_ttl_hours));
    ctx.db(move |conn| {
        crate::db::sessions::purge(conn, now - Duration::days(1))?;
        crate::db::registrations::purge(conn, now - ttl, now - Duration::hours(DRAFT_HOURS))
    })
    .await
}

/// Deletes failure-log rows older than EMETERAI_FAILURE_RETENTION_DAYS, and
/// cases closed longer ago than EMETERAI_CASE_RETENTION_DAYS (their data
/// keys with them). Returns how many of both.
pub async fn purge_failures(ctx: &Ctx<'_>, now: NaiveDateTime) -> Result<usize, AppError> {
    let retention = Duration::days(i64::from(ctx.settings.failure_retention_days));
    let failures = ctx
        .db(move |conn| crate::services::failures::purge(conn, now - retention, now))
        .await?;
    Ok(failures + crate::services::cases::purge(ctx, now).await?)
}
