//! "Someone else used my NIK", for citizens: the report form
//! (`/report`), the answer with the case reference, the case's status
//! page (`/report/status?token=...`, the link mailed to each party) and
//! its reply form (`POST /report/reply`). The cases: `services/cases.rs`.

use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::{Email, Nik, PhoneNumber, Problem};
use crate::error::AppError;
use crate::forms::{FormErrors, read_photo_form};
use crate::services::cases::{self, Event, MESSAGE_MAX, Replied, Report, Reported};
use crate::services::registration;
use crate::state::AppState;
use crate::web::{Page, PageCtx, see_other};

const FIELD_ORDER: &[&str] = &["nik", "email", "phone", "ktp_photo", "selfie", "statement"];

#[derive(Default, Clone)]
pub struct ReportValues {
    pub nik: String,
    pub email: String,
    pub phone: String,
    pub statement: String,
}

#[derive(Template)]
#[template(path = "report/form.html")]
struct FormPage {
    ctx: PageCtx,
    csrf: String,
    v: ReportValues,
    errors: FormErrors,
    summary: Vec<(&'static str, &'static str)>,
    hours: u32,
}

/// `GET /report`: the form; the NIK filled in when this browser was just
/// told that it is registered.
pub async fn form(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let page = FormPage {
        csrf: crate::session::csrf_token(&session),
        v: ReportValues {
            nik: crate::session::remind_nik(&session).unwrap_or_default(),
            ..Default::default()
        },
        errors: FormErrors::new(ctx.lang),
        summary: Vec::new(),
        hours: state.settings.case_answer_hours,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "report/filed.html")]
struct FiledPage {
    ctx: PageCtx,
    reference: String,
    joined: bool,
    status_link: String,
    hours: u32,
}

#[derive(Template)]
#[template(path = "report/not_held.html")]
struct NotHeldPage {
    ctx: PageCtx,
}

/// `POST /report`: checks the form, then (limits counted first) the two
/// photos, then files the report.
pub async fn post(
    Page(req, ctx, session, state): Page,
    payload: Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = read_photo_form(payload, &["ktp_photo", "selfie"], &state.settings).await?;
    let lang = ctx.lang;
    let values = ReportValues {
        nik: form.text("nik").to_string(),
        email: form.text("email").to_string(),
        phone: form.text("phone").to_string(),
        statement: form.text("statement").trim().to_string(),
    };
    let mut errors = FormErrors::new(lang);
    let today = state.clock.today_in_indonesia();
    let nik = Nik::parse(&values.nik, today)
        .map_err(|p| errors.add("nik", p))
        .ok();
    let email = Email::parse(&values.email)
        .map_err(|p| errors.add("email", p))
        .ok();
    let phone = PhoneNumber::parse(&values.phone)
        .map_err(|p| errors.add("phone", p))
        .ok();
    let (ktp, selfie) = (form.take_file("ktp_photo"), form.take_file("selfie"));
    if ktp.is_none() {
        errors.add("ktp_photo", Problem::PhotoMissing);
    }
    if selfie.is_none() {
        errors.add("selfie", Problem::SelfieMissing);
    }
    if values.statement.is_empty() {
        errors.add("statement", Problem::StatementEmpty);
    } else if values.statement.chars().count() > MESSAGE_MAX {
        errors.add("statement", Problem::StatementTooLong);
    }
    let fresh = crate::session::csrf_valid(&session, form.text("csrf_token"));
    let back = |ctx: PageCtx, values: ReportValues, errors: FormErrors, status| {
        let page = FormPage {
            csrf: crate::session::csrf_token(&session),
            summary: errors.summary(FIELD_ORDER),
            v: values,
            errors,
            hours: state.settings.case_answer_hours,
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !fresh {
        return back(ctx, values, errors, StatusCode::FORBIDDEN);
    }
    let (Some(nik), Some(email), Some(phone), Some(ktp), Some(selfie), true) =
        (nik, email, phone, ktp, selfie, errors.is_empty())
    else {
        return back(ctx, values, errors, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let svc = state.services();
    let client = crate::web::client(&req, &state);
    cases::admit(&svc, &client, &nik, &email).await?;
    let ktp = registration::check_photo(&svc, ktp.data, ktp.truncated).await?;
    let selfie = registration::check_photo(&svc, selfie.data, selfie.truncated).await?;
    let (ktp, selfie) = match (ktp, selfie) {
        (Ok(ktp), Ok(selfie)) => (ktp, selfie),
        (ktp, selfie) => {
            if let Err(problem) = ktp {
                errors.add("ktp_photo", problem);
            }
            if let Err(problem) = selfie {
                errors.add("selfie", problem);
            }
            return back(ctx, values, errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let report = Report {
        nik,
        email,
        phone,
        statement: values.statement,
        lang,
    };
    match cases::file(&svc, &client, report, ktp, selfie, state.clock.now()).await? {
        Reported::Filed {
            reference,
            joined,
            token,
        } => {
            let page = FiledPage {
                reference,
                joined,
                status_link: format!("/report/status?token={token}"),
                hours: state.settings.case_answer_hours,
                ctx,
            };
            page.ctx.render(StatusCode::OK, &page)
        }
        Reported::NotHeld => {
            let page = NotHeldPage { ctx };
            page.ctx.render(StatusCode::OK, &page)
        }
    }
}

/// One line of a case's history as its party reads it.
pub struct HistoryLine {
    pub when: String,
    pub who: &'static str,
    pub what: &'static str,
    pub message: Option<String>,
}

#[derive(Template)]
#[template(path = "report/status.html")]
struct StatusPage {
    ctx: PageCtx,
    csrf: String,
    token: String,
    reference: String,
    status: &'static str,
    received: String,
    due: Option<String>,
    history: Vec<HistoryLine>,
    can_reply: bool,
    holder: bool,
    released: bool,
    notice: Option<&'static str>,
    reply_error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "report/unknown.html")]
struct UnknownPage {
    ctx: PageCtx,
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    token: String,
    sent: Option<String>,
}

pub fn status_label(status: &str, t: &crate::i18n::Text) -> &'static str {
    match status {
        "new" => t.case_status_new,
        "in_review" => t.case_status_in_review,
        "waiting" => t.case_status_waiting,
        "resolved" => t.case_status_resolved,
        _ => t.case_status_rejected,
    }
}

pub fn event_label(kind: &str, t: &crate::i18n::Text) -> &'static str {
    match kind {
        "reported" => t.case_event_reported,
        "joined" => t.case_event_joined,
        "assigned" => t.case_event_assigned,
        "in_review" => t.case_event_in_review,
        "waiting" => t.case_event_waiting,
        "reply" => t.case_event_reply,
        "released" => t.case_event_released,
        "rejected" => t.case_event_rejected,
        "reinstated" => t.case_event_reinstated,
        _ => t.case_event_objected,
    }
}

/// `GET /report/status?token=...`: the case as this party may see it.
pub async fn status(
    Page(_, ctx, session, state): Page,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    let notice = query.sent.is_some().then_some(ctx.t.case_reply_sent);
    render_status(
        ctx,
        &session,
        &state,
        &query.token,
        notice,
        None,
        StatusCode::OK,
    )
    .await
}

async fn render_status(
    ctx: PageCtx,
    session: &Session,
    state: &web::Data<AppState>,
    token: &str,
    notice: Option<&'static str>,
    reply_error: Option<&'static str>,
    code: StatusCode,
) -> Result<HttpResponse, AppError> {
    let Some(view) = cases::status(&state.services(), token).await? else {
        let page = UnknownPage { ctx };
        return page.ctx.render(StatusCode::NOT_FOUND, &page);
    };
    let t = ctx.t;
    let history = view
        .events
        .iter()
        .rev()
        .map(|e: &Event| HistoryLine {
            when: crate::routes::staff::wib(e.at),
            who: if e.actor == view.role {
                t.case_you
            } else {
                t.case_staff
            },
            what: event_label(&e.kind, t),
            message: e.message.clone(),
        })
        .collect();
    // The holder whose objection was upheld: the case is closed as
    // rejected (the report was), which for them means the account is back.
    let reinstated = view.role == cases::ROLE_HOLDER
        && view.status == cases::STATUS_REJECTED
        && view
            .events
            .iter()
            .any(|e| e.kind == cases::event::REINSTATED);
    let page = StatusPage {
        csrf: crate::session::csrf_token(session),
        token: token.to_string(),
        status: if reinstated {
            t.case_status_reinstated
        } else {
            status_label(&view.status, t)
        },
        received: crate::routes::staff::wib(view.created_at),
        due: view.open.then(|| crate::routes::staff::wib(view.due_at)),
        history,
        can_reply: view.can_reply,
        holder: view.role == cases::ROLE_HOLDER,
        released: view.status == cases::STATUS_RESOLVED,
        reference: view.reference,
        notice,
        reply_error,
        ctx,
    };
    page.ctx.render(code, &page)
}

#[derive(Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    message: String,
}

/// `POST /report/reply`: a party's message (the holder's objection once
/// the NIK was released); back to the status page.
pub async fn reply(
    Page(req, ctx, session, state): Page,
    form: web::Form<ReplyForm>,
) -> Result<HttpResponse, AppError> {
    let t = ctx.t;
    let message = form.message.trim();
    let refused = if !crate::session::csrf_valid(&session, &form.csrf_token) {
        Some((t.reg_stale_form, StatusCode::FORBIDDEN))
    } else if message.is_empty() {
        Some((t.case_reply_empty, StatusCode::UNPROCESSABLE_ENTITY))
    } else {
        None
    };
    if let Some((problem, code)) = refused {
        return render_status(
            ctx,
            &session,
            &state,
            &form.token,
            None,
            Some(problem),
            code,
        )
        .await;
    }
    let client = crate::web::client(&req, &state);
    let now = state.clock.now();
    match cases::reply(&state.services(), &client, &form.token, message, now).await? {
        Replied::Sent { .. } => Ok(see_other(&format!(
            "/report/status?token={}&sent=1",
            form.token
        ))),
        Replied::Closed { .. } => {
            let closed = Some(t.case_closed_note);
            render_status(
                ctx,
                &session,
                &state,
                &form.token,
                None,
                closed,
                StatusCode::CONFLICT,
            )
            .await
        }
        Replied::Unknown => {
            let page = UnknownPage { ctx };
            page.ctx.render(StatusCode::NOT_FOUND, &page)
        }
    }
}
