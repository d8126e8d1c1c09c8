//! Operations endpoints: liveness, readiness and metrics.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};

use crate::error::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is alive and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("ok\n")
}

/// `GET /readyz`: the database is reachable; 503 when it is not, so a load
/// balancer stops sending citizens to this instance.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let result = state.services().ready().await;
    match result {
        Ok(()) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body(format!("ready: {}\n", state.db_url.backend_name())),
        Err(cause) => {
            tracing::warn!(error = %cause, "not ready: database unreachable or storage fault");
            // Plain text for probes, not the citizen's error page.
            let mut response = HttpResponse::ServiceUnavailable()
                .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
                .insert_header(("Retry-After", "5"))
                .body("not ready: database unreachable\n");
            response.extensions_mut().insert(crate::web::Rendered);
            response
        }
    }
}

/// `GET /metrics`: Prometheus / OpenMetrics text.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = state
        .metrics
        .encode(
            &state.pool,
            &state.hash_pool,
            (
                state
                    .unowned_upload_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
                state.settings.upload_budget_mb.saturating_mul(1024 * 1024),
            ),
        )
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(body))
}
