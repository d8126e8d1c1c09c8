//! Staff sign-in (password, then the second factor in `code.rs`) and sign-out.
use super::*;
use crate::services::staff::sign_in::{self, PasswordCheck};

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
}

pub async fn login_get(Page(req, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    if current_staff(&req, &state).await?.is_some() {
        return Ok(see_other("/staff/failures"));
    }
    let page = LoginPage {
        csrf: crate::session::csrf_token(&session),
        email: String::new(),
        error: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

pub async fn login_post(
    Page(req, ctx, session, state): Page,
    form: web::Form<crate::forms::SignInForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = |ctx: PageCtx, error: &'static str, status: StatusCode| {
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error: Some(error),
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let t = ctx.t;
        return retry(ctx, t.reg_stale, StatusCode::FORBIDDEN);
    }
    let checked = sign_in::check_password(
        &state.services(),
        &crate::web::client(&req, &state),
        &form.email,
        form.password.clone(),
        state.clock.now(),
    )
    .await?;
    let t = ctx.t;
    match checked {
        PasswordCheck::Refused(gate) => refused_sign_in(ctx, gate, retry),
        PasswordCheck::Locked => retry(ctx, t.staff_locked, StatusCode::TOO_MANY_REQUESTS),
        PasswordCheck::Wrong => retry(ctx, t.login_wrong, StatusCode::UNPROCESSABLE_ENTITY),
        PasswordCheck::Right(staff) => {
            if state.settings.staff_second_factor_required() {
                // The password was right; the code comes next (or enrolment).
                super::code::await_code(&session, &staff, state.clock.timestamp());
                return Ok(see_other("/staff/login/code"));
            }
            let cookie = start_session(&state, &staff, "sign_in").await?;
            let mut response = see_other("/staff/failures");
            response.add_cookie(&cookie).map_err(AppError::internal)?;
            Ok(response)
        }
    }
}

/// The page for a refused attempt (too soon, or paused), with a
/// `Retry-After` that says when.
pub(super) fn refused_sign_in(
    ctx: PageCtx,
    gate: crate::services::limits::SignInGate,
    page: impl FnOnce(PageCtx, &'static str, StatusCode) -> Result<HttpResponse, AppError>,
) -> Result<HttpResponse, AppError> {
    let t = ctx.t;
    let retry_after_secs = gate.retry_after().unwrap_or(1);
    let message = match gate {
        crate::services::limits::SignInGate::Wait { .. } => t.staff_wait,
        _ => t.staff_locked,
    };
    let mut response = page(ctx, message, StatusCode::TOO_MANY_REQUESTS)?;
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(retry_after_secs),
    );
    Ok(response)
}

/// Starts a staff session (its record, its audit row) and returns the
/// cookie that carries it.
pub(super) async fn start_session(
    state: &web::Data<AppState>,
    staff: &Staff,
    action: &str,
) -> Result<Cookie<'static>, AppError> {
    let sid = sign_in::start_session(&state.services(), staff, action, state.clock.now()).await?;
    let expires = state.clock.timestamp() + STAFF_SESSION.hours * 3600;
    let value = format!("{}|{}|{}|{sid}", staff.id, staff.session_epoch, expires);
    Ok(staff_cookie(
        &state.staff_cookie_key,
        value,
        state.settings.secure_cookies(),
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn logout(Page(req, _, session, state): Page, form: web::Form<CsrfForm>) -> HttpResponse {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return see_other("/staff/failures");
    }
    // The session's record ends too: a copy of the cookie opens nothing.
    if let Some(sid) = staff_session_id(&req, &state) {
        let ended = crate::services::sessions::end(&state.services(), sid, state.clock.now()).await;
        if let Err(e) = ended {
            tracing::warn!(error = %crate::error::error_chain(&e), "staff session not ended");
        }
    }
    let mut response = see_other("/staff/login");
    let _ = response.add_cookie(&removal_cookie(state.settings.secure_cookies()));
    response
}
