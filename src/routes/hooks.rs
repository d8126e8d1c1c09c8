//! `POST /hooks/mail-events`: delivery events from the mail provider,
//! signed (`services/mail_events.rs`). Machine to machine: plain answers,
//! no page, no CSRF token (the signature is the proof).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;
use crate::services::mail_events::{self, Received};
use crate::state::AppState;

pub async fn mail_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let signature = req
        .headers()
        .get(mail_events::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let received =
        mail_events::receive(&state.services(), &body, signature, state.clock.now()).await?;
    // A plain answer for a machine, left as it is by the error pages
    // (`web::Rendered`): a refused event is no citizen's failure.
    let plain = |status: StatusCode, text: String| {
        let mut response = HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(text);
        response.extensions_mut().insert(crate::web::Rendered);
        response
    };
    Ok(match received {
        Received::Accepted(outcomes) => {
            for kind in &outcomes {
                state.metrics.mail_event(kind);
            }
            plain(
                StatusCode::OK,
                format!("{} event(s) received\n", outcomes.len()),
            )
        }
        Received::Refused => {
            state.metrics.mail_event("refused");
            tracing::warn!("mail event refused: no or wrong signature");
            plain(
                StatusCode::UNAUTHORIZED,
                "signature missing or wrong (X-Emeterai-Signature: sha256=<HMAC-SHA256 of the body>)\n"
                    .into(),
            )
        }
        Received::Malformed(why) => {
            tracing::warn!(%why, "mail event refused: not the expected format");
            plain(StatusCode::BAD_REQUEST, format!("{why}\n"))
        }
    })
}
