//! `GET /staff/failures/{reference}`: one failure, its story and actions; its KTP photos.
use super::*;
use crate::services::staff::failures::{self as staff_service, ResendOutcome};

// ---------------------------------------------------------------- detail

pub struct TimelineEntry {
    pub when: String,
    pub at: NaiveDateTime,
    pub what: String,
    pub reference: Option<String>,
}

#[derive(Template)]
#[template(path = "staff/failure.html")]
struct FailurePage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    failure: FailureRow,
    when: String,
    reason: &'static str,
    /// The fields with mistakes, by the form's labels.
    fields: String,
    resolved_when: Option<String>,
    notes: Vec<(String, String, String)>,
    timeline: Vec<TimelineEntry>,
    pending_account: bool,
    /// The account's address, when it was found by NIK under another one,
    /// or else that of a registration waiting under this NIK.
    account_email: Option<String>,
    /// `account_email` belongs to an account (not a waiting registration).
    other_is_account: bool,
    /// KTP photos to open: (whose, upload id).
    photos: Vec<(String, String)>,
    notice: &'static str,
    /// The citizen's whole NIK and birth date can be shown (an account or
    /// a waiting registration was found), on request with a reason.
    can_reveal: bool,
    /// Shown after that request: (NIK, birth date).
    revealed: Option<(String, String)>,
    /// The case this failure (a "someone else used my NIK" report) is in.
    case: Option<String>,
}

#[derive(Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

pub async fn failure(
    Page(req, ctx, session, state): Page,
    path: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let reference = path.into_inner().to_ascii_uppercase();
    let notice = match query.done.as_deref() {
        Some("note") => ctx.t.staff_note_added,
        Some("resolved") => ctx.t.staff_marked_resolved,
        Some("resent") => ctx.t.staff_resent,
        Some("cooldown") => ctx.t.staff_resend_cooldown,
        Some("nothing") => ctx.t.staff_resend_nothing,
        Some("reveal_reason") => ctx.t.staff_reveal_reason_missing,
        _ => "",
    };
    render_detail(ctx, &session, &state, staff, reference, notice, false).await
}

/// The detail page of `reference`; with `reveal`, the citizen's whole NIK
/// and birth date on it (the caller audited the request and its reason).
async fn render_detail(
    ctx: PageCtx,
    session: &Session,
    state: &web::Data<AppState>,
    staff: StaffUser,
    reference: String,
    notice: &'static str,
    reveal: bool,
) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    let t = ctx.t;
    let Some(story) = staff_service::story(&state.services(), &reference).await? else {
        return Err(AppError::NotFound);
    };
    if !reveal {
        audit(state, &staff, "view_failure", reference.clone()).await?;
    }

    let mut timeline: Vec<TimelineEntry> = story
        .related
        .iter()
        .map(|r| TimelineEntry {
            when: wib(r.occurred_at),
            at: r.occurred_at,
            what: reason_label(&r.reason, lang).to_string(),
            reference: Some(r.reference.clone()),
        })
        .collect();
    for registration in &story.registrations {
        let mut event = |at: NaiveDateTime, what: &str| {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what: format!("{what} ({})", registration.email),
                reference: None,
            })
        };
        event(registration.created_at, t.staff_event_registered);
        if registration.updated_at != registration.created_at {
            event(registration.updated_at, t.staff_event_registration_replaced);
        }
        if let Some(at) = registration.link_opened_at {
            event(at, t.staff_event_link_opened);
        }
        if let Some(at) = registration.completed_at {
            event(at, t.staff_event_password_chosen);
        }
    }
    // An account made through a link is already in the timeline as
    // "password chosen"; older accounts show their own events.
    let made_by_link = |id: &str| {
        story
            .registrations
            .iter()
            .any(|r| r.account_id.as_deref() == Some(id))
    };
    if let Some(account) = story.account.as_ref().filter(|a| !made_by_link(&a.id)) {
        timeline.push(TimelineEntry {
            when: wib(account.created_at),
            at: account.created_at,
            what: t.staff_event_account_created.to_string(),
            reference: None,
        });
        if let Some(at) = account.verified_at {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what: t.staff_event_verified.to_string(),
                reference: None,
            });
        }
    }
    for mail in &story.mails {
        timeline.push(TimelineEntry {
            when: wib(mail.created_at),
            at: mail.created_at,
            what: format!("{} ({})", t.staff_event_mail_queued, mail.kind),
            reference: None,
        });
        let outcome = match (mail.status.as_str(), mail.sent_at) {
            ("sent", Some(at)) => Some((
                at,
                format!(
                    "{} ({}, {} x)",
                    t.staff_event_mail_sent, mail.kind, mail.attempts
                ),
            )),
            ("failed", _) => Some((
                mail.next_attempt_at,
                format!(
                    "{} ({}, {} x: {})",
                    t.staff_event_mail_failed,
                    mail.kind,
                    mail.attempts,
                    mail.last_error.clone().unwrap_or_default()
                ),
            )),
            _ => None,
        };
        if let Some((at, what)) = outcome {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what,
                reference: None,
            });
        }
        // What the provider reported of it (delivery events).
        if let (Some(state), Some(at)) = (&mail.delivery, mail.delivery_at) {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what: format!(
                    "{}: {} ({})",
                    t.staff_event_mail_delivery,
                    crate::i18n::delivery_label(state, ctx.lang),
                    mail.kind
                ),
                reference: None,
            });
        }
    }
    timeline.sort_by_key(|entry| std::cmp::Reverse(entry.at));

    // Whose NIK and birth date: the account's, else the newest waiting
    // registration's.
    let identity = story
        .account
        .as_ref()
        .map(|a| (a.nik.clone(), a.birth_date.clone()))
        .or_else(|| {
            story
                .newest_waiting()
                .map(|r| (r.nik.clone(), r.birth_date.clone()))
        });
    let failure = &story.failure;
    let case = if failure.reason == reason::NIK_REPORTED {
        crate::services::cases::reference_of_failure(&state.services(), &failure.reference).await?
    } else {
        None
    };
    // The other address to write to, where it is not the failure's own.
    let account_email = story
        .account
        .as_ref()
        .map(|a| a.email.clone())
        .or_else(|| story.newest_waiting().map(|r| r.email.clone()))
        .filter(|e| Some(e) != failure.email.as_ref());
    let photos = story
        .account
        .iter()
        .map(|a| (a.email.clone(), a.ktp_upload_id.clone()))
        .chain(
            story
                .waiting()
                .map(|r| (r.email.clone(), r.ktp_upload_id.clone())),
        )
        .collect();
    let pending_account = story.account.is_none() && story.waiting().next().is_some();
    let page = FailurePage {
        case,
        can_reveal: identity.is_some(),
        revealed: identity.filter(|_| reveal),
        csrf: crate::session::csrf_token(session),
        staff,
        when: wib(failure.occurred_at),
        reason: reason_label(&failure.reason, lang),
        fields: crate::i18n::field_labels(&failure.fields, lang),
        resolved_when: failure.resolved_at.map(wib),
        notes: story
            .notes
            .into_iter()
            .map(|n| (wib(n.created_at), n.staff_email, n.note))
            .collect(),
        timeline,
        pending_account,
        account_email,
        other_is_account: story.account.is_some(),
        photos,
        failure: story.failure,
        notice,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    note: String,
    /// Why the whole NIK is shown (`reveal`).
    #[serde(default)]
    reason: String,
}

/// `POST /staff/failures/{reference}/{action}`: `note`, `resolve`, `resend`,
/// `reveal` (the whole NIK and birth date, with a reason, audited: the
/// answer is the detail page with them, never a link that shows them).
pub async fn failure_action(
    Page(req, ctx, session, state): Page,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let (reference, action) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    let back = format!("/staff/failures/{reference}");
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other(&back));
    }
    let svc = state.services();
    let failure = staff_service::find(&svc, &reference)
        .await?
        .ok_or(AppError::NotFound)?;
    let now = state.clock.now();
    let done = match action.as_str() {
        "note" => {
            if !staff_service::add_note(&svc, &reference, &staff.email, &form.note, now).await? {
                return Ok(see_other(&back));
            }
            "note"
        }
        "resolve" => {
            staff_service::resolve(&svc, &reference, &staff.email, now).await?;
            "resolved"
        }
        "resend" => match staff_service::resend_link(&svc, &failure, now).await? {
            ResendOutcome::Sent => "resent",
            ResendOutcome::Cooldown => "cooldown",
            ResendOutcome::NothingWaiting => "nothing",
        },
        "reveal" => {
            let reason: String = form.reason.trim().chars().take(300).collect();
            if reason.is_empty() {
                return Ok(see_other(&format!("{back}?done=reveal_reason")));
            }
            audit(
                &state,
                &staff,
                "failure_reveal",
                format!("{reference}: {reason}"),
            )
            .await?;
            return render_detail(ctx, &session, &state, staff, reference, "", true).await;
        }
        _ => return Err(AppError::NotFound),
    };
    audit(&state, &staff, &format!("failure_{action}"), reference).await?;
    Ok(see_other(&format!("{back}?done={done}")))
}

// ---------------------------------------------------------------- KTP photo

/// `GET /staff/failures/{reference}/photo/{upload}`: the KTP photo of the
/// citizen a failure is about (an account or registration under the same
/// email or NIK), to settle "my NIK is already used" calls. Staff only,
/// never cached, every view audited.
pub async fn failure_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_only(&req, &state).await?;
    let (reference, upload) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    let photo = staff_service::photo(&state.services(), &reference, &upload).await?;
    let target = format!("{reference} {upload}");
    audited_photo(&state, &staff, photo, "view_ktp_photo", target).await
}
