//! Password hashing and checking with bcrypt: on the blocking pool, never
//! more at once than EMETERAI_HASH_CONCURRENCY (a surge of sign-ups must not
//! starve the database calls), and a 503 when the queue is too long.

use actix_web::web;

use crate::domain::Password;
use crate::errors::AppError;
use crate::startup::AppState;

/// A place in the bounded hashing queue; after 10 seconds of waiting the
/// server is overloaded and the citizen is told to come back (503).
async fn permit(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.hash_permits.acquire(),
    )
    .await
    {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(e)) => Err(AppError::internal(e)),
        Err(_) => Err(AppError::unavailable(
            "password hashing queue full (overloaded)",
        )),
    }
}

/// The bcrypt hash of a new password, at the configured cost.
pub async fn hash(state: &AppState, password: Password) -> Result<String, AppError> {
    let _permit = permit(state).await?;
    let cost = state.settings.bcrypt_cost;
    web::block(move || bcrypt::hash(password.expose(), cost))
        .await?
        .map_err(AppError::internal)
}

/// Whether `password` matches the stored hash. With no stored hash (an
/// unknown address) it is checked against a dummy one, so that both
/// failures take the same time and reveal nothing.
pub async fn verify(
    state: &AppState,
    password: String,
    stored: Option<String>,
) -> Result<bool, AppError> {
    let hash = stored.unwrap_or_else(|| state.dummy_hash.clone());
    let known = hash != state.dummy_hash;
    let _permit = permit(state).await?;
    let matches = web::block(move || bcrypt::verify(password, &hash).unwrap_or(false)).await?;
    Ok(known && matches)
}
