//! Keeping data sealed under the current keys, in the background: photos
//! and identity data stored in clear by an earlier version are sealed, and data keys still
//! wrapped by an older key-encryption key version are re-wrapped with the
//! newest (rotation). Small batches, each key or photo in its own short
//! transaction with a conditional update: every instance's worker may run
//! it at once, and stopping it anywhere loses nothing (it carries on from
//! what is left). `emeterai keys rewrap|seal-existing` run the same
//! batches from the command line.

use crate::error::AppError;
use crate::services::Ctx;

/// Photos sealed per batch (each is read and written whole).
pub const SEAL_BATCH: i64 = 50;
/// Data keys re-wrapped per batch (a few hundred bytes each).
pub const REWRAP_BATCH: i64 = 500;

/// What one round did and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub sealed: usize,
    pub rewrapped: usize,
    /// Data keys per KEK version, after the round.
    pub by_version: Vec<(i32, i64)>,
    /// Rows still holding identity data in clear (photos, registrations,
    /// accounts, failure rows, mails).
    pub in_clear: i64,
}

/// One round of sealing and re-wrapping.
pub async fn maintain(ctx: &Ctx<'_>) -> Result<Progress, AppError> {
    let keys = ctx.keys.clone();
    let now = ctx.clock.now();
    ctx.db(move |conn| -> Result<Progress, AppError> {
        let sealed = crate::db::keys::seal_clear(conn, &keys, SEAL_BATCH, now)?;
        let rewrapped = crate::db::keys::rewrap_batch(conn, &keys, REWRAP_BATCH)?;
        Ok(Progress {
            sealed,
            rewrapped,
            by_version: crate::db::keys::count_by_version(conn)?,
            in_clear: crate::db::keys::clear_count(conn)?,
        })
    })
    .await
}
