//! `GET /staff/cases`: the queue of "someone else used my NIK" cases, the
//! overdue ones first; `/staff/cases/{reference}`: one case with its
//! evidence beside the KTP photo of the account that holds the NIK, and
//! its decisions. Every view, photo and decision is audited.
use super::*;
use crate::routes::report::{event_label, status_label};
use crate::services::cases::{self as case_service, Acted, Action, Queue, STATUS_RESOLVED};

pub struct QueueRow {
    pub reference: String,
    pub status: &'static str,
    pub nik: String,
    pub received: String,
    pub due: String,
    pub overdue: bool,
    pub assigned: Option<String>,
    pub reports: i64,
}

#[derive(Template)]
#[template(path = "staff/cases.html")]
struct CasesPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    closed: bool,
    rows: Vec<QueueRow>,
}

#[derive(Deserialize)]
pub struct QueueQuery {
    show: Option<String>,
}

pub async fn cases(
    Page(req, ctx, session, state): Page,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let closed = query.show.as_deref() == Some("closed");
    let which = if closed { Queue::Closed } else { Queue::Open };
    let found = case_service::queue(&state.services(), which).await?;
    audit(&state, &staff, "view_cases", String::new()).await?;
    let now = state.clock.now();
    let t = ctx.t;
    let rows = found
        .into_iter()
        .map(|(case, reports)| QueueRow {
            status: status_label(&case.row.status, t),
            nik: crate::domain::mask_nik(&case.nik),
            received: wib(case.row.created_at),
            due: wib(case.row.due_at),
            overdue: case.row.is_open() && case.row.due_at < now,
            assigned: case.row.assigned_to.clone(),
            reference: case.row.reference,
            reports,
        })
        .collect();
    let page = CasesPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        closed,
        rows,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

pub struct ReportView {
    pub when: String,
    pub email: String,
    pub phone: String,
    pub statement: String,
    /// (label, photo id)
    pub photos: Vec<(&'static str, String)>,
}

pub struct HolderView {
    pub email: String,
    pub name: String,
    pub since: String,
    pub suspended: bool,
}

pub struct HistoryRow {
    pub when: String,
    pub who: String,
    pub what: &'static str,
    pub message: Option<String>,
}

#[derive(Template)]
#[template(path = "staff/case.html")]
struct CasePage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    reference: String,
    status: &'static str,
    nik: String,
    received: String,
    due: String,
    overdue: bool,
    open: bool,
    /// Open again after the holder of the released NIK objected.
    objected: bool,
    assigned: Option<String>,
    holder: Option<HolderView>,
    reports: Vec<ReportView>,
    history: Vec<HistoryRow>,
    notice: &'static str,
}

#[derive(Deserialize)]
pub struct CaseQuery {
    done: Option<String>,
}

pub async fn case(
    Page(req, ctx, session, state): Page,
    path: web::Path<String>,
    query: web::Query<CaseQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let reference = path.into_inner().to_ascii_uppercase();
    let Some(detail) = case_service::detail(&state.services(), &reference).await? else {
        return Err(AppError::NotFound);
    };
    audit(&state, &staff, "view_case", reference.clone()).await?;
    let t = ctx.t;
    let notice = match query.done.as_deref() {
        Some("done") => t.staff_case_done,
        Some("not_now") => t.staff_case_not_now,
        Some("message") => t.staff_case_message_missing,
        Some("nik_taken") => t.staff_case_reinstate_taken,
        _ => "",
    };
    let reports = detail
        .parties
        .iter()
        .filter(|p| p.role == case_service::ROLE_REPORTER)
        .map(|p| ReportView {
            when: wib(p.created_at),
            email: p.contact.email.clone(),
            phone: crate::domain::display_phone(&p.contact.phone),
            statement: p.contact.statement.clone(),
            photos: detail
                .photos
                .iter()
                .filter(|photo| photo.party_id == p.id)
                .map(|photo| {
                    let label = if photo.kind == case_service::PHOTO_SELFIE {
                        t.staff_case_photo_selfie
                    } else {
                        t.staff_case_photo_ktp
                    };
                    (label, photo.id.clone())
                })
                .collect(),
        })
        .collect();
    let history = detail
        .events
        .iter()
        .rev()
        .map(|e| HistoryRow {
            when: wib(e.at),
            who: match e.actor.as_str() {
                case_service::ROLE_REPORTER => t.case_actor_reporter.to_string(),
                case_service::ROLE_HOLDER => t.case_actor_holder.to_string(),
                staff => staff.to_string(),
            },
            what: event_label(&e.kind, t),
            message: e.message.clone(),
        })
        .collect();
    let row = &detail.case.row;
    let page = CasePage {
        csrf: crate::session::csrf_token(&session),
        staff,
        reference: row.reference.clone(),
        status: status_label(&row.status, t),
        nik: crate::domain::mask_nik(&detail.case.nik),
        received: wib(row.created_at),
        due: wib(row.due_at),
        overdue: row.is_open() && row.due_at < state.clock.now(),
        open: row.is_open(),
        objected: row.is_open() && row.holder_account_id.is_some(),
        assigned: row.assigned_to.clone(),
        holder: detail.holder.as_ref().map(|a| HolderView {
            email: crate::domain::email_mask(&a.email),
            name: a.full_name.clone(),
            since: wib(a.created_at),
            suspended: a.suspended_at.is_some() || row.status == STATUS_RESOLVED,
        }),
        reports,
        history,
        notice,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct CaseActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    message: String,
}

/// `POST /staff/cases/{reference}/{action}`: `assign`, `ask`, `release`,
/// `reject` (the last three with the message the citizens read).
pub async fn case_action(
    Page(req, _, session, state): Page,
    path: web::Path<(String, String)>,
    form: web::Form<CaseActionForm>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let (reference, action) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    let back = format!("/staff/cases/{reference}");
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other(&back));
    }
    let message: String = form
        .message
        .trim()
        .chars()
        .take(case_service::MESSAGE_MAX)
        .collect();
    let needs_message = matches!(action.as_str(), "ask" | "release" | "reject" | "reinstate");
    if needs_message && message.is_empty() {
        return Ok(see_other(&format!("{back}?done=message")));
    }
    let decided = match action.as_str() {
        "assign" => Action::Assign,
        "ask" => Action::Ask(message),
        "release" => Action::Release(message),
        "reject" => Action::Reject(message),
        "reinstate" => Action::Reinstate(message),
        _ => return Err(AppError::NotFound),
    };
    let now = state.clock.now();
    let acted =
        case_service::act(&state.services(), &reference, &staff.email, decided, now).await?;
    match acted {
        Acted::Done => {}
        Acted::NotNow => return Ok(see_other(&format!("{back}?done=not_now"))),
        Acted::NikTaken => return Ok(see_other(&format!("{back}?done=nik_taken"))),
    }
    audit(&state, &staff, &format!("case_{action}"), reference).await?;
    Ok(see_other(&format!("{back}?done=done")))
}

/// `GET /staff/cases/{reference}/photo/{id}`: a reporter's photo, or
/// (`holder`) the KTP photo of the account holding the NIK. Staff only,
/// never cached, every view audited.
pub async fn case_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_only(&req, &state).await?;
    let (reference, photo) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    if photo != "holder" && uuid::Uuid::parse_str(&photo).is_err() {
        return Err(AppError::NotFound);
    }
    let found = case_service::photo(&state.services(), &reference, &photo).await?;
    let target = format!("{reference} {photo}");
    audited_photo(&state, &staff, found, "view_case_photo", target).await
}
