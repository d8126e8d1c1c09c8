//! The staff second factor: after the right password, `GET/POST
//! /staff/login/code` asks for the authenticator app's code (or a recovery
//! code), or, for a staff member without one yet, enrols the app first and
//! shows the recovery codes once.
//!
//! Between the two steps the encrypted session cookie holds which staff
//! member gave the right password, until when; a new enrolment's secret
//! stays there too until a code confirms it, so nothing is stored for an
//! enrolment that is never finished.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::second_factor::TotpSecret;
use crate::error::AppError;
use crate::services::staff::sign_in::{self, CodeCheck, Staff};
use crate::state::AppState;
use crate::web::{Page, PageCtx, see_other};

const PENDING_KEY: &str = "staff_code_for";
const ENROL_KEY: &str = "staff_enrol_secret";
/// Time to type the code after the password.
const PENDING_MINUTES: i64 = 10;

/// Remembers, in the session, that `staff` gave the right password.
pub(super) fn await_code(session: &Session, staff: &Staff, now: i64) {
    let until = now + PENDING_MINUTES * 60;
    let _ = session.insert(
        PENDING_KEY,
        format!("{}|{}|{until}", staff.id, staff.session_epoch),
    );
}

/// The staff member waiting for the second step, while it is still valid:
/// not expired, the account enabled and its epoch unchanged.
async fn pending(
    session: &Session,
    state: &web::Data<AppState>,
) -> Result<Option<Staff>, AppError> {
    let Some(value) = session.get::<String>(PENDING_KEY).ok().flatten() else {
        return Ok(None);
    };
    let mut parts = value.split('|');
    let (Some(id), Some(Ok(epoch)), Some(Ok(until))) = (
        parts.next().map(str::to_string),
        parts.next().map(str::parse::<i64>),
        parts.next().map(str::parse::<i64>),
    ) else {
        return Ok(None);
    };
    if until < state.clock.timestamp() {
        return Ok(None);
    }
    sign_in::staff_member(&state.services(), id, epoch).await
}

#[derive(Template)]
#[template(path = "staff/code.html")]
struct CodePage {
    ctx: PageCtx,
    csrf: String,
    error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "staff/enrol.html")]
struct EnrolPage {
    ctx: PageCtx,
    csrf: String,
    error: Option<&'static str>,
    otpauth: String,
    key: String,
    qr_size: i32,
    qr_path: String,
}

#[derive(Template)]
#[template(path = "staff/recovery.html")]
struct RecoveryPage {
    ctx: PageCtx,
    codes: Vec<String>,
}

/// The enrolment secret of this session, made on first use.
fn enrol_secret(session: &Session) -> TotpSecret {
    if let Some(secret) = session
        .get::<String>(ENROL_KEY)
        .ok()
        .flatten()
        .and_then(|text| TotpSecret::from_base32(&text))
    {
        return secret;
    }
    let secret = TotpSecret::generate();
    let _ = session.insert(ENROL_KEY, secret.as_base32());
    secret
}

/// The code page, or the enrolment page for a staff member without a
/// second factor yet.
fn render(
    ctx: PageCtx,
    session: &Session,
    staff: &Staff,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let csrf = crate::session::csrf_token(session);
    if staff.totp_secret.is_some() {
        let page = CodePage { ctx, csrf, error };
        return page.ctx.render(status, &page);
    }
    let secret = enrol_secret(session);
    let otpauth = secret.otpauth_url(&staff.email);
    let (qr_size, qr_path) = qr_svg_path(&otpauth);
    let page = EnrolPage {
        ctx,
        csrf,
        error,
        key: secret.grouped(),
        otpauth,
        qr_size,
        qr_path,
    };
    page.ctx.render(status, &page)
}

/// A QR code as one SVG path (a unit square per dark module, with the
/// four-module quiet zone the standard asks for): drawn inline, so the page
/// needs no image request and no script.
fn qr_svg_path(text: &str) -> (i32, String) {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return (0, String::new());
    };
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{} {}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    (qr.size() + 8, path)
}

pub async fn get(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    match pending(&session, &state).await? {
        Some(staff) => render(ctx, &session, &staff, None, StatusCode::OK),
        None => Ok(see_other("/staff/login")),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

pub async fn post(
    Page(req, ctx, session, state): Page,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let Some(staff) = pending(&session, &state).await? else {
        return Ok(see_other("/staff/login"));
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let t = ctx.t;
        return render(
            ctx,
            &session,
            &staff,
            Some(t.stale_retry),
            StatusCode::FORBIDDEN,
        );
    }
    let enrolment = staff.totp_secret.is_none().then(|| enrol_secret(&session));
    let checked = sign_in::check_code(
        &state.services(),
        &crate::web::client(&req, &state),
        &staff,
        &form.code,
        enrolment.as_ref(),
        state.clock.now(),
    )
    .await?;
    let (action, codes) = match checked {
        CodeCheck::Refused(gate) => {
            return super::session::refused_sign_in(ctx, gate, |ctx, error, status| {
                render(ctx, &session, &staff, Some(error), status)
            });
        }
        CodeCheck::Wrong => {
            let t = ctx.t;
            return render(
                ctx,
                &session,
                &staff,
                Some(t.staff_code_wrong),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        CodeCheck::EnrolledMeanwhile => {
            // Enrolled meanwhile (another tab): ask for a code.
            session.remove(ENROL_KEY);
            return Ok(see_other("/staff/login/code"));
        }
        CodeCheck::Accepted { action } => (action, None),
        CodeCheck::Enrolled { codes } => ("second_factor_enrolled", Some(codes)),
    };
    session.remove(PENDING_KEY);
    session.remove(ENROL_KEY);
    let cookie = super::session::start_session(&state, &staff, action).await?;
    let mut response = match codes {
        // Shown once, on the answer to the enrolment (never cached).
        Some(codes) => {
            let page = RecoveryPage { ctx, codes };
            page.ctx.render(StatusCode::OK, &page)?
        }
        None => see_other("/staff/failures"),
    };
    response.add_cookie(&cookie).map_err(AppError::internal)?;
    Ok(response)
}
