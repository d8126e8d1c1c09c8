//! The background work of each instance, on a timer: delivering the mail
//! outbox (`services::outbox`), writing failure rows that waited in memory,
//! measuring the photos that wait for an owner, and purging what has
//! expired (`services::retention`). It runs in the web process (it takes
//! the application state).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::services::{outbox, retention};
use crate::state::AppState;

/// How often the status page's figures are read again.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Judges the status page's parts every few seconds from this instance's
/// figures (`services::status`), and exports them as metrics. Its own task,
/// so that a slow outbox delivery does not hold it.
pub async fn run_status(state: web::Data<AppState>) {
    loop {
        refresh_status(&state).await;
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// One reading of the status page's figures, judged and kept.
pub async fn refresh_status(state: &AppState) -> crate::services::status::Snapshot {
    use std::sync::atomic::Ordering;
    let (ready, oldest_mail, notice) = crate::services::status::read(&state.services()).await;
    let (signin_rejected, new_password_rejected) = state.metrics.hash_rejected_totals();
    let snapshot = state.status.update(crate::services::status::Reading {
        now: state.clock.now(),
        ready,
        oldest_mail,
        notice,
        signin_rejected,
        new_password_rejected,
        server_errors: state.metrics.server_errors.load(Ordering::Relaxed),
    });
    state.metrics.set_status(
        snapshot.ready,
        snapshot.oldest_mail_secs.unwrap_or(0),
        [
            ("signup", snapshot.signup.level.value()),
            ("mail", snapshot.mail.level.value()),
            ("signin", snapshot.signin.level.value()),
        ],
    );
    snapshot
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
    let mut next_keys = std::time::Instant::now();
    loop {
        // Seal what earlier versions stored in clear, and re-wrap data keys
        // after a rotation: a batch every few seconds while work is left,
        // else once a minute (and the metrics then).
        if std::time::Instant::now() >= next_keys {
            // A version `keys rotate` added (the key file is shared by
            // every instance) is taken within a minute, without a restart.
            if let Err(reason) = state.keys.refresh() {
                tracing::error!(%reason, "the key file could not be read again");
            }
            match crate::services::keys::maintain(&state.services()).await {
                Ok(progress) => {
                    state.metrics.set_keys(
                        state.keys.newest(),
                        &progress.by_version,
                        progress.in_clear,
                    );
                    if progress.sealed + progress.rewrapped > 0 {
                        tracing::info!(
                            sealed = progress.sealed,
                            rewrapped = progress.rewrapped,
                            in_clear = progress.in_clear,
                            "key maintenance"
                        );
                    }
                    let more = progress.sealed as i64 >= crate::services::keys::SEAL_BATCH
                        || progress.rewrapped as i64 == crate::services::keys::REWRAP_BATCH;
                    next_keys =
                        std::time::Instant::now() + Duration::from_secs(if more { 5 } else { 60 });
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error::error_chain(&error), "key maintenance failed; will try again");
                    next_keys = std::time::Instant::now() + Duration::from_secs(60);
                }
            }
        }
        if last_measure.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            if let Err(error) = state.refresh_upload_bytes().await {
                tracing::warn!(error = %crate::error::error_chain(&error), "cannot measure the upload budget; will try again");
            }
            last_measure = Some(std::time::Instant::now());
        }
        // A full batch means more are due: go on at once rather than wait
        // for the next wake-up (a burst of sign-ups wakes the worker once).
        let full_batch = match outbox::deliver_due(&state.services(), &state.mailer).await {
            Ok(count) => count as i64 == outbox::BATCH,
            Err(error) => {
                tracing::warn!(error = %crate::error::error_chain(&error), "mail outbox unavailable; will try again");
                false
            }
        };
        if state.failures.buffered() > 0 {
            let flush_state = state.clone();
            if let Ok(written) = web::block(move || {
                crate::services::failures::flush_buffered(
                    &flush_state.pool,
                    &flush_state.failures,
                    &flush_state.keys,
                )
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
            match retention::purge_failures(&state.services(), state.clock.now()).await {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "purged old failure records"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error::error_chain(&error), "failure-log purge failed; will try again")
                }
            }
            match crate::services::own_data::carry_out_deletions(
                &state.services(),
                state.clock.now(),
            )
            .await
            {
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %crate::error::error_chain(&error), "account deletions failed; will try again")
                }
            }
            match retention::purge_expired(&state.services(), state.clock.now()).await {
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
