//! The help centre: why registration fails and what to do.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::error::AppError;
use crate::i18n::Lang;
use crate::web::PageCtx;

#[derive(Template)]
#[template(path = "help/index.html")]
struct HelpPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "help/email_registered.html")]
struct EmailRegisteredPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "help/connection.html")]
struct ConnectionPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "help/ktp_photo.html")]
struct KtpPhotoPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "legal/terms.html")]
struct TermsPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "legal/privacy.html")]
struct PrivacyPage {
    ctx: PageCtx,
    /// "7 hari" / "7 days", or hours when not whole days.
    unverified_period: String,
    draft_hours: i64,
    failure_days: u32,
    deletion_days: u32,
    case_days: u32,
}

/// `GET /help`.
pub async fn index(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = HelpPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /help/email-registered`.
pub async fn email_registered(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = EmailRegisteredPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /help/connection`.
pub async fn connection(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = ConnectionPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /help/ktp-photo`: how to take a readable photo, what files work.
pub async fn ktp_photo(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = KtpPhotoPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /terms`.
pub async fn terms(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = TermsPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /privacy`: what is collected, why, who sees it, for how long (the
/// periods are the running settings).
pub async fn privacy(
    ctx: PageCtx,
    state: actix_web::web::Data<crate::state::AppState>,
) -> Result<HttpResponse, AppError> {
    let hours = state.settings.unverified_ttl_hours;
    let unverified_period = match (hours % 24, ctx.lang) {
        (0, Lang::Id) => format!("{} hari", hours / 24),
        (0, Lang::En) => format!("{} days", hours / 24),
        (_, Lang::Id) => format!("{hours} jam"),
        (_, Lang::En) => format!("{hours} hours"),
    };
    let page = PrivacyPage {
        unverified_period,
        draft_hours: crate::mail::DRAFT_HOURS,
        failure_days: state.settings.failure_retention_days,
        deletion_days: state.settings.deletion_wait_days,
        case_days: state.settings.case_retention_days,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}
