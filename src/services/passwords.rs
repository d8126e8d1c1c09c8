//! Password hashing and checking with bcrypt, on the hashing pool
//! (`crate::hashing`): admitted or refused at once, never queued into a
//! timeout. A refusal is `AppError::Busy`, a 503 page with `Refresh` that
//! sends the citizen back to `retry` (nothing they sent is lost).

use crate::domain::Password;
use crate::error::AppError;
use crate::hashing::{Class, HashPool};
use crate::metrics::Metrics;

/// What hashing needs: the pool, the cost, the dummy hash for unknown
/// addresses, and the metrics that count refusals.
#[derive(Clone, Copy)]
pub struct Hashing<'a> {
    pub pool: &'a HashPool,
    pub metrics: &'a Metrics,
    pub cost: u32,
    pub dummy_hash: &'a str,
}

async fn run<T: Send + 'static>(
    state: &Hashing<'_>,
    class: Class,
    retry: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    match state.pool.submit(class, work) {
        Ok(answer) => answer.await.map_err(AppError::internal),
        Err(full) => {
            state.metrics.hash_rejected(class);
            tracing::warn!(
                class = class.label(),
                "password hashing queue full: refused"
            );
            Err(AppError::Busy {
                cause: Box::new(full),
                retry: retry.to_string(),
            })
        }
    }
}

/// The bcrypt hash of a new password, at the configured cost.
pub async fn hash(
    state: &Hashing<'_>,
    password: Password,
    retry: &str,
) -> Result<String, AppError> {
    let cost = state.cost;
    run(state, Class::NewPassword, retry, move || {
        bcrypt::hash(password.expose(), cost)
    })
    .await?
    .map_err(AppError::internal)
}

/// Whether `password` matches the stored hash. With no stored hash (an
/// unknown address) it is checked against a dummy one, so that both
/// failures take the same time and reveal nothing.
pub async fn verify(
    state: &Hashing<'_>,
    password: String,
    stored: Option<String>,
    retry: &str,
) -> Result<bool, AppError> {
    let hash = stored.unwrap_or_else(|| state.dummy_hash.to_string());
    let known = hash != state.dummy_hash;
    let matches = run(state, Class::SignIn, retry, move || {
        bcrypt::verify(password, &hash).unwrap_or(false)
    })
    .await?;
    Ok(known && matches)
}
