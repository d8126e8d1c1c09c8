//! The services: what the portal does, as plain async functions that take
//! what they need (a [`Ctx`] with the database pool, the settings and the
//! failure log; the time as `now`; the values already parsed into
//! `domain` types) and return outcomes the handlers turn into pages. They
//! know nothing of HTTP: no actix-web, no session, no `AppState`.
//!
//! - [`registration`]: the details-first sign-up, draft photos, the answers
//!   to an address or NIK already taken.
//! - [`verification`]: the mailed link, choosing the password, resending.
//! - [`accounts`]: signing in, the session records, signing out, the
//!   password reset.
//! - [`staff`]: the console's sign-in, the failure log as staff read and
//!   act on it, the audit log.
//! - [`outbox`]: delivering the mail outbox with retries (`mail.rs`
//!   composes and sends; the worker calls it).
//! - [`retention`]: purging what has expired.
//! - [`sessions`]: the server-side session records of citizens and staff.
//! - [`failures`]: the failure log (reference codes).
//! - [`limits`]: every rate limit and counter, counted atomically in the
//!   database.
//! - [`passwords`]: bcrypt on the hashing pool (`hashing.rs`), admitted
//!   or refused at once.

pub mod accounts;
pub mod cases;
pub mod failures;
pub mod keys;
pub mod limits;
pub mod mail_events;
pub mod not_me;
pub mod outbox;
pub mod own_data;
pub mod passwords;
pub mod registration;
pub mod reminder;
pub mod retention;
pub mod sessions;
pub mod staff;
pub mod status;
pub mod verification;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::config::Settings;
use crate::db::{DbConn, DbUrl, Pool};
use crate::error::AppError;
use crate::services::failures::FailureLog;

/// What the services share: the database and where it lives, the
/// settings, the failure log, the mail worker's bell and the bounds an
/// instance keeps in memory. Built by the web layer (`AppState::services`).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub pool: &'a Pool,
    pub db_url: &'a DbUrl,
    /// The SQLite file opened at start-up (device, inode).
    pub sqlite_identity: Option<(u64, u64)>,
    pub settings: &'a Settings,
    /// Seals citizens' data at rest; the key ring from the key file.
    pub keys: &'a std::sync::Arc<crate::domain::sealed::KeyRing>,
    /// The one clock, for the helpers that read the time themselves.
    pub clock: &'a crate::clock::Clock,
    pub log: &'a FailureLog,
    /// Wakes the mail worker when a mail was queued.
    pub wake_mailer: &'a tokio::sync::Notify,
    /// Bounds how many KTP photos are decoded at once.
    pub photo_permits: &'a tokio::sync::Semaphore,
    /// Bytes of photos no account owns yet, as last measured.
    pub unowned_upload_bytes: &'a AtomicI64,
    /// Hashes new passwords off the request workers.
    pub hashing: passwords::Hashing<'a>,
    /// Passwords too common to accept.
    pub common_passwords: &'a crate::domain::CommonPasswords,
    /// Seals staff TOTP secrets at rest.
    pub totp_key: &'a crate::domain::second_factor::SealingKey,
}

impl<'a> Ctx<'a> {
    /// Runs blocking database work on the blocking pool (`db::run`).
    pub async fn db<T, E>(
        &self,
        work: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        E: Into<AppError> + Send + 'static,
    {
        crate::db::run(self.pool, work).await
    }

    /// Refuses writes into a SQLite file that was removed, replaced or made
    /// read-only: no sign-up is acknowledged into a file that is lost.
    pub fn check_storage(&self) -> Result<(), AppError> {
        match crate::db::sqlite_fault(
            self.db_url,
            self.sqlite_identity,
            self.settings.min_free_disk_mb,
        ) {
            Some(fault) => Err(AppError::unavailable(fault)),
            None => Ok(()),
        }
    }

    /// Whether the photos waiting for an owner have used up the budget.
    pub fn upload_budget_reached(&self) -> bool {
        self.unowned_upload_bytes.load(Ordering::Relaxed)
            >= self.settings.upload_budget_mb.saturating_mul(1024 * 1024)
    }

    /// Measures the photos waiting for an owner (all instances' together)
    /// for `upload_budget_reached`; the worker does every few seconds.
    pub async fn refresh_upload_bytes(&self) -> Result<i64, AppError> {
        let bytes = self.db(crate::db::accounts::unowned_upload_bytes).await?;
        self.unowned_upload_bytes.store(bytes, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Whether this instance can serve: the SQLite file is the one opened,
    /// still there and writable, and a connection answers a query within
    /// two seconds. The cause when not.
    pub async fn ready(&self) -> Result<(), String> {
        let (pool, url) = (self.pool.clone(), self.db_url.clone());
        let (identity, min_free_mb) = (self.sqlite_identity, self.settings.min_free_disk_mb);
        // A server that went silent must not hold the probe: unready
        // after four seconds, whatever the connection is doing.
        let check = tokio::task::spawn_blocking(move || {
            crate::db::check_ready(
                &pool,
                &url,
                identity,
                min_free_mb,
                std::time::Duration::from_secs(2),
            )
        });
        match tokio::time::timeout(std::time::Duration::from_secs(4), check).await {
            Ok(joined) => joined.map_err(|e| e.to_string())?,
            Err(_) => Err("the database did not answer within 4 s".to_string()),
        }
    }

    /// Tells the mail worker that a mail waits in the outbox.
    pub fn mail_queued(&self) {
        self.wake_mailer.notify_one();
    }
}
