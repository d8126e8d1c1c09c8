//! Logs, request ids, metrics and the request body limit, as middleware.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Structured logs to standard error; verbosity from RUST_LOG (default info).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Outermost middleware: gives each request an id (echoed in `X-Request-Id`
/// and carried by every log line of the request), logs its outcome and
/// records it in the metrics by route pattern, never by raw path or query
/// (which can hold tokens).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = new_request_id();
    let span = tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.path());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    if let Some(state) = state {
        if status >= 500 {
            state
                .metrics
                .server_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status,
            })
            .inc();
        state
            .metrics
            .latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(status, micros = elapsed.as_micros() as u64, "answered");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

/// Refuses a request whose declared body is larger than the configured limit
/// with 413 before reading it. Bodies without a length are bounded by each
/// extractor's own limit.
pub async fn limit_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| {
            if matches!(req.path(), "/register" | "/report" | "/account/correction") {
                s.settings.register_body_limit()
            } else {
                s.settings.max_body_bytes
            }
        })
        .unwrap_or(u64::MAX);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        let response = HttpResponse::PayloadTooLarge()
            .insert_header((header::CONNECTION, "close"))
            .finish();
        return Ok(req.into_response(response).map_into_right_body());
    }
    // The whole body must arrive within the deadline, however slowly its
    // bytes trickle in: past it the stream ends with an error, the handler
    // answers, and the connection is closed.
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map(|s| std::time::Duration::from_secs(s.settings.body_timeout_secs));
    if let Some(timeout) = timeout {
        let deadline = tokio::time::Instant::now() + timeout;
        let payload = actix_web::HttpMessage::take_payload(&mut req);
        // Fused: body readers may poll again after the end.
        let timed = futures_util::stream::unfold(Some(payload), move |payload| async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut payload))
                .await
            {
                Ok(Some(item)) => Some((item, Some(payload))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received in time",
                    ))),
                    None,
                )),
            }
        });
        let boxed: std::pin::Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>,
                    >,
            >,
        > = Box::pin(futures_util::StreamExt::fuse(timed));
        req.set_payload(actix_web::dev::Payload::Stream { payload: boxed });
    }
    Ok(next.call(req).await?.map_into_left_body())
}
