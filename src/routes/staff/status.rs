//! `GET /staff/status`: the incident notice of the public status page
//! (post one, end it) beside this instance's figures;
//! `POST /staff/status/{post|end}`. Posting and ending are audited in the
//! same transaction as the change (`db::status`).
use super::*;
use crate::services::status;

pub struct NoticeLine {
    pub text_id: String,
    pub text_en: String,
    pub started: String,
    pub started_by: String,
    /// (when, by whom) it ended.
    pub ended: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "staff/status.html")]
struct StatusNoticePage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    on: Option<NoticeLine>,
    history: Vec<NoticeLine>,
    parts: Vec<(&'static str, &'static str)>,
    oldest_mail: String,
    message: &'static str,
    text_id: String,
    text_en: String,
}

#[derive(Deserialize)]
pub struct StatusQuery {
    done: Option<String>,
}

fn line(n: status::Notice) -> NoticeLine {
    NoticeLine {
        text_id: n.text_id,
        text_en: n.text_en,
        started: wib(n.started_at),
        started_by: n.started_by,
        ended: n
            .ended_at
            .map(|at| (wib(at), n.ended_by.unwrap_or_default())),
    }
}

async fn render_page(
    ctx: PageCtx,
    session: &Session,
    state: &web::Data<AppState>,
    staff: StaffUser,
    message: &'static str,
    typed: (String, String),
    code: StatusCode,
) -> Result<HttpResponse, AppError> {
    let notices = status::recent_notices(&state.services()).await?;
    let (on, history): (Vec<_>, Vec<_>) = notices.into_iter().partition(|n| n.ended_at.is_none());
    let s = state.status.snapshot();
    let t = ctx.t;
    let page = StatusNoticePage {
        csrf: crate::session::csrf_token(session),
        staff,
        on: on.into_iter().next().map(line),
        history: history.into_iter().map(line).collect(),
        parts: vec![
            (t.status_part_signup, s.signup.level.label(t)),
            (t.status_part_mail, s.mail.level.label(t)),
            (t.status_part_signin, s.signin.level.label(t)),
        ],
        oldest_mail: s.oldest_mail_secs.map_or("0".into(), |n| n.to_string()),
        message,
        text_id: typed.0,
        text_en: typed.1,
        ctx,
    };
    page.ctx.render(code, &page)
}

pub async fn status_notice(
    Page(req, ctx, session, state): Page,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let message = match query.done.as_deref() {
        Some("posted") => ctx.t.staff_status_done_posted,
        Some("ended") => ctx.t.staff_status_done_ended,
        _ => "",
    };
    let typed = (String::new(), String::new());
    render_page(ctx, &session, &state, staff, message, typed, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct NoticeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    text_id: String,
    #[serde(default)]
    text_en: String,
}

/// `POST /staff/status/post` and `/staff/status/end`.
pub async fn status_action(
    Page(req, ctx, session, state): Page,
    path: web::Path<String>,
    form: web::Form<NoticeForm>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other("/staff/status"));
    }
    let now = state.clock.now();
    match path.as_str() {
        "post" => {
            let posted = status::post_notice(
                &state.services(),
                &form.text_id,
                &form.text_en,
                &staff.email,
                now,
            )
            .await?;
            match posted {
                Ok(notice) => {
                    state.status.set_notice(Some(notice));
                    Ok(see_other("/staff/status?done=posted"))
                }
                Err(status::NoticeProblem::Text) => {
                    let typed = (form.text_id.clone(), form.text_en.clone());
                    let message = ctx.t.staff_status_missing;
                    render_page(
                        ctx,
                        &session,
                        &state,
                        staff,
                        message,
                        typed,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
            }
        }
        "end" => {
            status::end_notice(&state.services(), &staff.email, now).await?;
            state.status.set_notice(None);
            Ok(see_other("/staff/status?done=ended"))
        }
        _ => Err(AppError::NotFound),
    }
}
