//! One error type for the application, and the error pages.
//!
//! `AppError::error_response` only decides the status, logs the cause chain
//! with a reference code and attaches that code to the response. The
//! error-page middleware ([`error_page`]) then renders every 4xx/5xx response
//! that is not already a finished page, whether it came from our handlers or
//! from actix itself (unknown path, wrong method, body too large), in the
//! citizen's language, with the reference code and the contact channels.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

pub use crate::error::{AppError, error_chain};
use crate::reference::new_reference;
use crate::web::{PageCtx, Rendered};

/// Seconds a citizen is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 30;

/// Seconds before the busy page (hashing at capacity) tries again by itself.
pub const BUSY_RETRY_SECS: u32 = 5;

/// Where the busy page's "try again now" button leads (a local path).
#[derive(Debug, Clone)]
pub struct BusyRetry(pub String);

/// Minutes until a rate limit lets the citizen try again (`Retry-After`,
/// rounded up).
#[derive(Debug, Clone, Copy)]
pub struct RateRetry(pub i64);

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError::Unavailable(Box::new(e))
    }
}

/// The reference code of an error response, attached by whoever logged it;
/// `recorded` when its failure-log row is already written.
#[derive(Debug, Clone)]
pub struct ErrorReference {
    pub code: String,
    pub recorded: bool,
}

/// The failure-log reason for an error status, for the statuses that are
/// recorded (a citizen met them while trying to get through).
fn recorded_reason(status: StatusCode) -> Option<&'static str> {
    use crate::services::failures::reason;
    match status.as_u16() {
        400 => Some(reason::BAD_REQUEST),
        413 => Some(reason::UPLOAD_REJECTED),
        429 => Some(reason::RATE_LIMITED),
        503 => Some(reason::SERVICE_UNAVAILABLE),
        s if s >= 500 => Some(reason::INTERNAL_ERROR),
        _ => None,
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let AppError::RateLimited {
            reference,
            retry_after_secs,
        } = self
        {
            let secs = (*retry_after_secs).max(1);
            let mut response = HttpResponse::build(status)
                .insert_header((header::RETRY_AFTER, secs))
                .finish();
            response.extensions_mut().insert(ErrorReference {
                code: reference.clone(),
                recorded: true,
            });
            // The page says the same wait as the header, in minutes.
            response
                .extensions_mut()
                .insert(RateRetry((secs + 59) / 60));
            return response;
        }
        let reference = new_reference("ERR");
        let chain = error_chain(self);
        if status.is_server_error() {
            tracing::error!(reference = %reference, status = status.as_u16(), error = %chain, "request failed");
        } else {
            tracing::info!(reference = %reference, status = status.as_u16(), error = %chain, "request refused");
        }
        let mut response = HttpResponse::build(status);
        if let AppError::Busy { retry, .. } = self {
            // A header, not a meta refresh (which the page checks flag).
            response
                .insert_header((header::RETRY_AFTER, BUSY_RETRY_SECS))
                .insert_header(("Refresh", format!("{BUSY_RETRY_SECS}; url={retry}")));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        let mut response = response.finish();
        if let AppError::Busy { retry, .. } = self {
            response.extensions_mut().insert(BusyRetry(retry.clone()));
        }
        response.extensions_mut().insert(ErrorReference {
            code: reference,
            recorded: false,
        });
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    ctx: &'a PageCtx,
    status: u16,
    title: &'static str,
    body: &'static str,
    reference: &'a str,
    /// The busy page's "try again now" target.
    retry: Option<String>,
    /// The 429 page's wait, in minutes.
    wait_minutes: Option<i64>,
}

fn texts_for(ctx: &PageCtx, status: StatusCode) -> (&'static str, &'static str) {
    let t = ctx.t;
    match status.as_u16() {
        400 => (t.error_400_title, t.error_400_body),
        401 | 403 => (t.error_403_title, t.error_403_body),
        404 | 410 => (t.error_404_title, t.error_404_body),
        405 => (t.error_405_title, t.error_405_body),
        413 => (t.error_413_title, t.error_413_body),
        429 => (t.error_429_title, t.error_429_body),
        500 => (t.error_500_title, t.error_500_body),
        502..=504 => (t.error_503_title, t.error_503_body),
        s if s >= 500 => (t.error_500_title, t.error_500_body),
        _ => (t.error_other_title, t.error_other_body),
    }
}

/// Error-page middleware handler: turns any 4xx/5xx response that is not
/// already a page into the error page for its status.
pub fn error_page<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if res.response().extensions().get::<Rendered>().is_some() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let known = res.response().extensions().get::<ErrorReference>().cloned();
    let already_recorded = known.as_ref().is_some_and(|r| r.recorded);
    let reference = known.map(|r| r.code).unwrap_or_else(|| {
        let reference = new_reference("ERR");
        // Errors raised by actix itself (unknown path, wrong method, body too
        // large, malformed form) arrive here without having been logged.
        let cause = res
            .response()
            .error()
            .map(|e| e.to_string())
            .unwrap_or_default();
        tracing::info!(reference = %reference, status = status.as_u16(), path = %res.request().path(), error = %cause, "request refused");
        reference
    });
    let retry = res
        .response()
        .extensions()
        .get::<BusyRetry>()
        .map(|r| r.0.clone());
    let wait_minutes = res.response().extensions().get::<RateRetry>().map(|r| r.0);
    let (req, old) = res.into_parts();
    let html = match PageCtx::from_request(&req) {
        Ok(ctx) => {
            let (title, body) = match retry {
                Some(_) => (ctx.t.busy_title, ctx.t.busy_body),
                None => texts_for(&ctx, status),
            };
            ErrorPage {
                ctx: &ctx,
                status: status.as_u16(),
                title,
                body,
                reference: &reference,
                retry,
                wait_minutes,
            }
            .render()
            .map(|html| (html, ctx.lang.code()))
            .ok()
        }
        Err(_) => None,
    };
    let (html, lang) = html.unwrap_or_else(|| {
        let phone = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map(|state| state.contact.phone.clone());
        (fallback_page(status, &reference, phone.as_deref()), "id")
    });
    let mut builder = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    builder
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_LANGUAGE, HeaderValue::from_static(lang)));
    let mut response = builder.body(html);
    response.extensions_mut().insert(Rendered);
    response.extensions_mut().insert(ErrorReference {
        code: reference.clone(),
        recorded: true,
    });
    let record = if already_recorded {
        None
    } else {
        recorded_reason(status)
    };
    let state = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .cloned();
    match (record, state) {
        (Some(reason), Some(state)) => Ok(ErrorHandlerResponse::Future(Box::pin(async move {
            crate::services::failures::record_as(
                &state.services(),
                &crate::web::client(&req, &state),
                &reference,
                crate::services::failures::Failure::new(reason),
            )
            .await;
            Ok(ServiceResponse::new(req, response).map_into_right_body())
        }))),
        _ => Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        )),
    }
}

/// A page that needs nothing but the status and reference, for the case
/// where even the application state is missing.
#[derive(Template)]
#[template(path = "error_fallback.html")]
struct FallbackPage<'a> {
    status: u16,
    reference: &'a str,
    phone: &'a str,
}

fn fallback_page(status: StatusCode, reference: &str, phone: Option<&str>) -> String {
    FallbackPage {
        status: status.as_u16(),
        reference,
        phone: phone.unwrap_or(crate::config::DEFAULT_CONTACT_PHONE),
    }
    .render()
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_resort_page_speaks_both_languages_with_the_contact() {
        let html = fallback_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR-7K3Q-9XWZ",
            Some("021 555"),
        );
        assert!(html.contains("Terjadi kesalahan (500)"), "{html}");
        assert!(html.contains(r#"<h2 lang="en">Something went wrong (500)</h2>"#));
        assert!(html.contains("ERR-7K3Q-9XWZ") && html.contains("021 555"));
        let html = fallback_page(StatusCode::SERVICE_UNAVAILABLE, "ERR-7K3Q-9XWZ", None);
        assert!(html.contains("1500 159"), "{html}");
    }
}
