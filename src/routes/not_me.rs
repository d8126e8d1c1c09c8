//! "This was not me": `GET /not-me?token=...` (the second link of every
//! mail about a registration or an account) shows what the button would
//! do and changes nothing, for HEAD and GET alike, so mail scanners that
//! open every link cancel nothing; `POST /not-me` does it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::error::AppError;
use crate::services::not_me::{self, Done, Look};
use crate::web::{Page, PageCtx};

#[derive(Template)]
#[template(path = "not_me.html")]
struct NotMePage {
    ctx: PageCtx,
    title: &'static str,
    body: &'static str,
    is_error: bool,
    masked_email: Option<String>,
    reference: Option<String>,
    /// The form, with the token it posts.
    token: Option<String>,
    button: &'static str,
    csrf: String,
    /// Links to sign in and to register (after a cancellation).
    sign_in: bool,
}

impl NotMePage {
    fn new(ctx: PageCtx, title: &'static str, body: &'static str) -> NotMePage {
        NotMePage {
            ctx,
            title,
            body,
            is_error: false,
            masked_email: None,
            reference: None,
            token: None,
            button: "",
            csrf: String::new(),
            sign_in: false,
        }
    }

    fn error(mut self) -> NotMePage {
        self.is_error = true;
        self
    }
}

#[derive(Deserialize)]
pub struct NotMeQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct NotMeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
}

/// The page for a link that leads nowhere now, with its status.
fn dead_end(ctx: PageCtx, look: &Look) -> (StatusCode, NotMePage) {
    let t = ctx.t;
    match look {
        Look::Used => (
            StatusCode::OK,
            NotMePage::new(ctx, t.not_me_used_title, t.not_me_used_body),
        ),
        Look::Expired => (
            StatusCode::GONE,
            NotMePage::new(ctx, t.not_me_expired_title, t.not_me_expired_body).error(),
        ),
        Look::Gone => {
            let mut page = NotMePage::new(ctx, t.not_me_gone_title, t.not_me_gone_body);
            page.sign_in = true;
            (StatusCode::OK, page)
        }
        _ => (
            StatusCode::NOT_FOUND,
            NotMePage::new(ctx, t.not_me_unknown_title, t.not_me_unknown_body).error(),
        ),
    }
}

/// `GET /not-me?token=...` (and HEAD): what the button would do.
pub async fn show(
    Page(_, ctx, session, state): Page,
    query: web::Query<NotMeQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.token.clone().unwrap_or_default();
    let look = not_me::look(&state.services(), &token, state.clock.now()).await?;
    let t = ctx.t;
    let (status, page) = match look {
        Look::Registration { masked_email } => {
            let mut page =
                NotMePage::new(ctx, t.not_me_registration_title, t.not_me_registration_body);
            page.masked_email = Some(masked_email);
            page.button = t.not_me_registration_button;
            (StatusCode::OK, page)
        }
        Look::Account { masked_email } => {
            let mut page = NotMePage::new(ctx, t.not_me_account_title, t.not_me_account_body);
            page.masked_email = Some(masked_email);
            page.button = t.not_me_account_button;
            (StatusCode::OK, page)
        }
        other => dead_end(ctx, &other),
    };
    let page = NotMePage {
        token: (!page.button.is_empty()).then_some(token),
        csrf: crate::session::csrf_token(&session),
        ..page
    };
    page.ctx.render(status, &page)
}

/// `POST /not-me`: cancels the registration, or secures the account.
pub async fn confirm(
    Page(req, ctx, session, state): Page,
    form: web::Form<NotMeForm>,
) -> Result<HttpResponse, AppError> {
    let t = ctx.t;
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        // A page left open too long: show the same question again, with a
        // fresh form (nothing was done).
        let back = format!("/not-me?token={}", urlencoding_token(&form.token));
        return Ok(crate::web::see_other(&back));
    }
    let client = crate::web::client(&req, &state);
    let done = not_me::confirm(
        &state.services(),
        &client,
        &form.token,
        ctx.lang,
        state.clock.now(),
    )
    .await?;
    let (status, page) = match done {
        Done::Cancelled { reference } => {
            let mut page = NotMePage::new(ctx, t.not_me_cancelled_title, t.not_me_cancelled_body);
            page.reference = Some(reference);
            page.sign_in = true;
            (StatusCode::OK, page)
        }
        Done::Secured { reference } => {
            let mut page = NotMePage::new(ctx, t.not_me_secured_title, t.not_me_secured_body);
            page.reference = Some(reference);
            (StatusCode::OK, page)
        }
        Done::Used => dead_end(ctx, &Look::Used),
        Done::Expired => dead_end(ctx, &Look::Expired),
        Done::Gone => dead_end(ctx, &Look::Gone),
        Done::Unknown => dead_end(ctx, &Look::Unknown),
    };
    page.ctx.render(status, &page)
}

/// A posted token back into a URL: only hex survives (a token is 64 hex
/// digits; anything else is not one and shows the "unknown link" page).
fn urlencoding_token(token: &str) -> String {
    token
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(64)
        .collect()
}
