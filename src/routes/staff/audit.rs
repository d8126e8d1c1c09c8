//! `GET /staff/audit`: what staff did.
use super::*;

// ---------------------------------------------------------------- audit

#[derive(Template)]
#[template(path = "staff/audit.html")]
struct AuditPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    entries: Vec<(String, String, String, String)>,
}

pub async fn audit_log(Page(req, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    let staff = staff_or_login!(req, state);
    let entries = crate::services::staff::recent_audit(&state.services(), 500).await?;
    let page = AuditPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        entries: entries
            .into_iter()
            .map(|e| {
                let action = crate::i18n::audit_action_label(&e.action, lang).to_string();
                (wib(e.at), e.staff_email, action, e.target)
            })
            .collect(),
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}
