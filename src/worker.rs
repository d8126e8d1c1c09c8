//! The background work of each instance: delivering the mail outbox with
//! retries, writing failure rows that waited in memory, measuring the
//! photos that wait for an owner, and purging what has expired. It runs in
//! the web process (it takes the application state); the mail itself is
//! composed and sent by `mail.rs`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::db::outbox;
use crate::error::AppError;
use crate::mail::{DRAFT_HOURS, backoff, now};
use crate::state::AppState;

/// Delivers every mail that is due, once. Returns how many were handled.
pub async fn deliver_due(state: &web::Data<AppState>) -> Result<usize, AppError> {
    let settings = &state.settings;
    let lease = chrono::Duration::seconds(settings.mail_timeout_secs as i64 * 2 + 30);
    let claimed = state
        .db(move |conn| {
            let now = now();
            outbox::claim_due(conn, now, now + lease, BATCH)
        })
        .await?;
    let count = claimed.len();
    // The batch goes to the provider at once (each mail is one request),
    // then each outcome is written as it comes back.
    let deliveries = claimed.into_iter().map(|mail| async move {
        let result = state.mailer.deliver(&mail).await;
        record_delivery(state, mail, result).await
    });
    for outcome in futures_util::future::join_all(deliveries).await {
        outcome?;
    }
    Ok(count)
}

/// Mails claimed at once by one instance's worker.
const BATCH: i64 = 20;

/// Writes what became of one delivery: sent, or the next try (capped
/// exponential backoff), or failed after the last try.
async fn record_delivery(
    state: &web::Data<AppState>,
    mail: outbox::Mail,
    result: Result<(), String>,
) -> Result<(), AppError> {
    let settings = &state.settings;
    let base = Duration::from_secs(settings.mail_retry_base_secs);
    let max = Duration::from_secs(settings.mail_retry_max_secs);
    let max_attempts = settings.mail_max_attempts;
    let id = mail.id;
    let attempts = mail.attempts as u32 + 1;
    let kind = mail.kind;
    state
        .db(move |conn| {
            let now = now();
            match result {
                Ok(()) => {
                    tracing::info!(mail = %id, kind = %kind, attempts, "mail sent");
                    outbox::mark_sent(conn, &id, now)
                }
                Err(error) => {
                    let retry_at = (attempts < max_attempts).then(|| {
                        now + chrono::Duration::from_std(backoff(attempts, base, max))
                            .unwrap_or_else(|_| chrono::Duration::seconds(300))
                    });
                    if retry_at.is_some() {
                        tracing::warn!(mail = %id, kind = %kind, attempts, %error, "mail not delivered; will try again");
                    } else {
                        tracing::error!(mail = %id, kind = %kind, attempts, %error, "mail failed after its last try");
                    }
                    outbox::mark_attempt_failed(conn, &id, &error, retry_at)
                }
            }
        })
        .await
}

/// Deletes registrations that were never confirmed in time, and abandoned
/// draft uploads (older than `DRAFT_HOURS`).
pub async fn purge_expired(state: &web::Data<AppState>) -> Result<(usize, usize), AppError> {
    let ttl = chrono::Duration::hours(i64::from(state.settings.unverified_ttl_hours));
    state
        .db(move |conn| {
            let now = now();
            crate::db::sessions::purge(conn, now - chrono::Duration::days(1))?;
            crate::db::registrations::purge(
                conn,
                now - ttl,
                now - chrono::Duration::hours(DRAFT_HOURS),
            )
        })
        .await
}

/// Deletes failure-log rows older than EMETERAI_FAILURE_RETENTION_DAYS.
pub async fn purge_failures(state: &web::Data<AppState>) -> Result<usize, AppError> {
    let retention = chrono::Duration::days(i64::from(state.settings.failure_retention_days));
    state
        .db(move |conn| {
            let now = now();
            crate::failures::purge(conn, now - retention, now)
        })
        .await
}

/// The background worker of one instance: sends due mail whenever woken (a
/// new mail was queued) or every poll interval, writes failure records that
/// waited for the database, and purges expired registrations and old
/// failure records hourly. Several instances can run it on one database.
pub async fn run_worker(state: web::Data<AppState>, wake: Arc<tokio::sync::Notify>) {
    let poll = Duration::from_secs(state.settings.mail_poll_secs);
    let purge_every = Duration::from_secs(3600);
    let mut last_purge: Option<std::time::Instant> = None;
    let mut last_measure: Option<std::time::Instant> = None;
    loop {
        if last_measure.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            if let Err(error) = state.refresh_upload_bytes().await {
                tracing::warn!(error = %crate::error::error_chain(&error), "cannot measure the upload budget; will try again");
            }
            last_measure = Some(std::time::Instant::now());
        }
        // A full batch means more are due: go on at once rather than wait
        // for the next wake-up (a burst of sign-ups wakes the worker once).
        let full_batch = match deliver_due(&state).await {
            Ok(count) => count as i64 == BATCH,
            Err(error) => {
                tracing::warn!(error = %crate::error::error_chain(&error), "mail outbox unavailable; will try again");
                false
            }
        };
        if state.failures.buffered() > 0 {
            let flush_state = state.clone();
            if let Ok(written) = web::block(move || {
                crate::failures::flush_buffered(&flush_state.pool, &flush_state.failures)
            })
            .await
                && written > 0
            {
                tracing::info!(
                    written,
                    "failure records written after the database came back"
                );
            }
        }
        if last_purge.is_none_or(|t| t.elapsed() >= purge_every) {
            match purge_failures(&state).await {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "purged old failure records"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error::error_chain(&error), "failure-log purge failed; will try again")
                }
            }
            match purge_expired(&state).await {
                Ok((accounts, drafts)) if accounts + drafts > 0 => {
                    tracing::info!(accounts, drafts, "purged expired registrations")
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error::error_chain(&error), "purge failed; will try again")
                }
            }
            last_purge = Some(std::time::Instant::now());
        }
        if !full_batch {
            let _ = tokio::time::timeout(poll, wake.notified()).await;
        }
    }
}
