//! What the handlers share, built once per application (`startup.rs`
//! builds it): settings, the database pool, and the services' parts. The
//! services below the web layer take the parts they need, never this.

use std::sync::Arc;

use crate::assets::Assets;
use crate::config::Settings;
use crate::db::{DbUrl, Pool};
use crate::metrics::Metrics;

/// Contact Center channels, from settings; the same on every page.
#[derive(Debug, Clone)]
pub struct Contact {
    pub phone: String,
    pub whatsapp: String,
    pub email: String,
}

impl Contact {
    /// The phone number as a `tel:` target (digits and a leading +).
    pub fn phone_tel(&self) -> String {
        self.phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    }
}

/// Everything the handlers share, built once per application.
pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    pub db_url: DbUrl,
    /// The SQLite file opened at start-up (device, inode).
    pub sqlite_identity: Option<(u64, u64)>,
    pub assets: Assets,
    pub metrics: Metrics,
    /// The public status page's judgement and the incident notice, in
    /// memory (`worker::run_status` refreshes it every few seconds).
    pub status: crate::services::status::Board,
    /// Seals citizens' data at rest (`domain/sealed.rs`), from the key file.
    pub keys: Arc<crate::domain::sealed::KeyRing>,
    /// The one clock (tests move it; see `clock.rs`).
    pub clock: crate::clock::Clock,
    pub contact: Contact,
    pub secret: Vec<u8>,
    pub mailer: crate::mail::Mailer,
    /// Wakes the mail worker when a mail was queued.
    pub wake_mailer: Arc<tokio::sync::Notify>,
    pub common_passwords: crate::domain::CommonPasswords,
    /// Bounds how many KTP photos are decoded at once.
    pub photo_permits: tokio::sync::Semaphore,
    /// Runs bcrypt off the request workers, admitting or refusing at once.
    pub hash_pool: crate::hashing::HashPool,
    /// A hash to check unknown sign-in addresses against, so they take as
    /// long as wrong passwords.
    pub dummy_hash: String,
    pub failures: crate::services::failures::FailureLog,
    /// Bytes of photos no account owns yet, as last measured (by the worker,
    /// every few seconds): the upload budget compares against this.
    pub unowned_upload_bytes: std::sync::atomic::AtomicI64,
    /// Encrypts the staff session cookie (derived from the secret for that
    /// purpose only).
    pub staff_cookie_key: actix_web::cookie::Key,
    /// Seals staff TOTP secrets at rest (derived from the secret for that
    /// purpose only).
    pub totp_key: crate::domain::second_factor::SealingKey,
}

impl AppState {
    /// What the services need, from this state.
    pub fn services(&self) -> crate::services::Ctx<'_> {
        crate::services::Ctx {
            pool: &self.pool,
            db_url: &self.db_url,
            sqlite_identity: self.sqlite_identity,
            settings: &self.settings,
            clock: &self.clock,
            keys: &self.keys,
            log: &self.failures,
            wake_mailer: &self.wake_mailer,
            photo_permits: &self.photo_permits,
            unowned_upload_bytes: &self.unowned_upload_bytes,
            hashing: crate::services::passwords::Hashing {
                pool: &self.hash_pool,
                metrics: &self.metrics,
                cost: self.settings.bcrypt_cost,
                dummy_hash: &self.dummy_hash,
            },
            common_passwords: &self.common_passwords,
            totp_key: &self.totp_key,
        }
    }

    /// Measures the photos waiting for an owner (all instances' together).
    pub async fn refresh_upload_bytes(&self) -> Result<i64, crate::error::AppError> {
        self.services().refresh_upload_bytes().await
    }
}
