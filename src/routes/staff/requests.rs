//! `GET /staff/requests`: what citizens asked of their own data, with the
//! 3×24-hour clock (the overdue ones first), the deletions waiting for
//! their day and those carried out; one correction, its new KTP photo and
//! its decision. Every view and decision is audited.
use super::*;
use crate::services::own_data::{self, RequestDetail};

pub struct RequestLine {
    pub id: String,
    pub kind: &'static str,
    pub email: String,
    pub received: String,
    pub due: String,
    pub overdue: bool,
    pub answered: Option<String>,
    pub by: Option<String>,
    pub status: String,
}

#[derive(Template)]
#[template(path = "staff/requests.html")]
struct RequestsPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    open: Vec<RequestLine>,
    answered: Vec<RequestLine>,
    deletions: Vec<(String, String)>,
    deleted: Vec<(String, String)>,
}

fn kind_label(kind: &str, t: &crate::i18n::Text) -> &'static str {
    match kind {
        "phone_change" => t.staff_kind_phone,
        "email_change" => t.staff_kind_email,
        _ => t.staff_kind_correction,
    }
}

pub async fn requests(Page(req, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let queue = own_data::queue(&state.services()).await?;
    audit(&state, &staff, "view_requests", String::new()).await?;
    let (t, now) = (ctx.t, state.clock.now());
    let (open, answered): (Vec<RequestLine>, Vec<RequestLine>) = queue
        .requests
        .into_iter()
        .map(|row| {
            let r = row.request;
            RequestLine {
                kind: kind_label(&r.kind, t),
                email: row.email,
                received: wib(r.created_at),
                due: wib(r.due_at),
                overdue: r.decided_at.is_none() && r.due_at < now,
                answered: r.decided_at.map(wib),
                by: r.decided_by,
                status: r.status,
                id: r.id,
            }
        })
        .partition(|line| line.answered.is_none());
    let page = RequestsPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        open,
        answered,
        deletions: queue
            .deletions
            .into_iter()
            .map(|(email, due)| (email, wib(due)))
            .collect(),
        deleted: queue
            .deleted
            .into_iter()
            .map(|(asked, done)| (wib(asked), wib(done)))
            .collect(),
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "staff/request.html")]
struct RequestPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    id: String,
    kind: &'static str,
    received: String,
    due: String,
    overdue: bool,
    open: bool,
    answered: Option<String>,
    decision: Option<String>,
    /// (name, birth date, masked address) of the account now.
    now: Option<(String, String, String)>,
    /// (name, birth date, note) asked for.
    asked: Option<(String, String, String)>,
    notice: &'static str,
}

#[derive(Deserialize)]
pub struct RequestQuery {
    done: Option<String>,
}

pub async fn request(
    Page(req, ctx, session, state): Page,
    path: web::Path<String>,
    query: web::Query<RequestQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let id = path.into_inner();
    let now = state.clock.now();
    let Some(RequestDetail {
        request,
        account,
        correction,
    }) = own_data::request_detail(&state.services(), &id, now).await?
    else {
        return Err(AppError::NotFound);
    };
    audit(&state, &staff, "view_request", id.clone()).await?;
    let t = ctx.t;
    let notice = match query.done.as_deref() {
        Some("done") => t.staff_request_done,
        Some("not_now") => t.staff_request_not_now,
        Some("message") => t.staff_case_message_missing,
        _ => "",
    };
    let page = RequestPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        kind: kind_label(&request.kind, t),
        received: wib(request.created_at),
        due: wib(request.due_at),
        overdue: request.decided_at.is_none() && request.due_at < now,
        open: request.status == "open",
        answered: request.decided_at.map(wib),
        decision: request.decision.clone(),
        now: account.map(|a| {
            let masked = crate::domain::email_mask(&a.email);
            (a.full_name, a.birth_date, masked)
        }),
        asked: correction.map(|c| (c.full_name, c.birth_date, c.note)),
        id,
        notice,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    message: String,
}

/// `POST /staff/requests/{id}/{approve|reject}`.
pub async fn request_action(
    Page(req, _, session, state): Page,
    path: web::Path<(String, String)>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let (id, action) = path.into_inner();
    let back = format!("/staff/requests/{id}");
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other(&back));
    }
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(AppError::NotFound),
    };
    let message: String = form.message.trim().chars().take(1000).collect();
    if message.is_empty() {
        return Ok(see_other(&format!("{back}?done=message")));
    }
    let now = state.clock.now();
    if !own_data::decide(&state.services(), &id, approve, &staff.email, &message, now).await? {
        return Ok(see_other(&format!("{back}?done=not_now")));
    }
    audit(&state, &staff, &format!("request_{action}"), id).await?;
    Ok(see_other(&format!("{back}?done=done")))
}

/// `GET /staff/requests/{id}/photo`: the new KTP photo of a correction,
/// or (`current`) the account's photo now. Audited.
pub async fn request_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_only(&req, &state).await?;
    let (id, which) = path.into_inner();
    let now = state.clock.now();
    let photo = match which.as_str() {
        "new" => own_data::request_photo(&state.services(), &id, now).await?,
        "current" => own_data::request_current_photo(&state.services(), &id).await?,
        _ => None,
    };
    let target = format!("{id} {which}");
    audited_photo(&state, &staff, photo, "view_request_photo", target).await
}
