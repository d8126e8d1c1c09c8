//! `POST /register`: reads and parses the form, hands it to
//! `services::registration::register` (the photo, the limits, the
//! submission: the pending registration, its photo, a link and its mail in
//! one transaction, idempotently per `submission_id`), and renders what it
//! comes to; a form with mistakes comes back with every answer.

use crate::web::see_other;
use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use super::{
    DraftPhoto, FIELD_ORDER, RegisterDraft, RegisterPage, RegisterValues, check_submission_id,
    check_values, forget_register_draft, keep_register_draft, new_submission_id,
};
use crate::error::AppError;
use crate::forms::{FormErrors, MultipartForm, file_size_label, read_photo_form};
use crate::services::registration::{self, CheckEmailNotice, Outcome, Posted, SentPhoto};
use crate::state::AppState;
use crate::web::{Page, PageCtx};

fn values_of(form: &MultipartForm) -> RegisterValues {
    RegisterValues {
        full_name: form.text("full_name").to_string(),
        nik: form.text("nik").to_string(),
        birth_date: form.text("birth_date").to_string(),
        email: form.text("email").to_string(),
        phone: form.text("phone").to_string(),
        npwp: form.text("npwp").to_string(),
        agree_terms: form.text("agree_terms") == "on",
    }
}

#[derive(Template)]
#[template(path = "register/taken.html")]
struct TakenPage {
    ctx: PageCtx,
    nik: bool,
    reference: String,
    /// Where the NIK is taken: the "which address did I use?" form, with
    /// the holding address masked.
    remind: Option<Option<String>>,
    csrf: String,
}

pub async fn post(
    Page(req, ctx, session, state): Page,
    payload: Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = read_photo_form(payload, &["ktp_photo"], &state.settings).await?;
    let lang = ctx.lang;
    let values = values_of(&form);
    let posted_submission = form.text("submission_id").to_string();
    let submission_key = check_submission_id(&state, &posted_submission);
    let submission_valid = submission_key.is_some();
    let fresh = crate::session::csrf_valid(&session, form.text("csrf_token")) && submission_valid;
    let draft_upload_id = Some(form.text("ktp_upload_id"))
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    // Should the database fail under what follows (a failover: the limits
    // are counted in it first), the 503 page leaves the answers in the
    // session: the form comes back filled in, with the same submission id
    // (a first attempt that did commit is then recognised, not doubled).
    // Every answer below replaces or forgets it.
    if fresh {
        keep_draft(
            &session,
            &state,
            &values,
            draft_upload_id.clone(),
            &posted_submission,
            true,
        );
    }
    let mut errors = FormErrors::new(lang);
    let answers = check_values(&values, &mut errors, state.clock.today_in_indonesia())
        .filter(|_| errors.is_empty())
        .ok_or_else(|| errors.items().to_vec());
    let posted = Posted {
        fresh,
        submission_key,
        posted_submission: posted_submission.clone(),
        answers,
        typed_email: values.email.clone(),
        typed_nik: values.nik.clone(),
        draft_upload_id,
        photo: form.take_file("ktp_photo").map(|file| SentPhoto {
            file_name: file.file_name,
            data: file.data,
            truncated: file.truncated,
        }),
        session_key: crate::session::csrf_token(&session),
        lang,
    };
    let client = crate::web::client(&req, &state);
    let svc = state.services();
    match registration::register(&svc, &client, posted, state.clock.now()).await? {
        Outcome::CameBack {
            problems,
            photo,
            reference,
        } => {
            // The form comes back with every answer. A still-valid
            // submission id stays, so a retry of the corrected form is
            // still recognised as the same submission.
            let submission_id = if submission_valid {
                posted_submission
            } else {
                new_submission_id(&state)
            };
            let upload_id = photo.as_ref().map(|p| p.id.clone());
            keep_draft(&session, &state, &values, upload_id, &submission_id, false);
            let errors = FormErrors::with(lang, problems);
            let status = if fresh {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::FORBIDDEN
            };
            RegisterPage {
                csrf: crate::session::csrf_token(&session),
                submission_id,
                v: values,
                summary: errors.summary(FIELD_ORDER),
                errors,
                photo: photo.map(|stored| shown(stored, lang)),
                stale: !fresh,
                reference,
                ctx,
            }
            .render(status)
        }
        Outcome::CheckEmail { email, notice } => {
            crate::session::set_pending_email(&session, &email);
            forget_register_draft(&session);
            Ok(see_other(match notice {
                Some(CheckEmailNotice::Replaced) => "/register/check-email?notice=replaced",
                Some(CheckEmailNotice::Cooldown) => "/register/check-email?notice=cooldown",
                None => "/register/check-email",
            }))
        }
        Outcome::Taken {
            reference,
            nik_held,
        } => {
            forget_register_draft(&session);
            if let Some(held) = &nik_held {
                crate::session::set_remind_nik(&session, &held.nik);
            }
            let page = TakenPage {
                ctx,
                nik: nik_held.is_some(),
                reference,
                remind: nik_held.map(|held| held.holder),
                csrf: crate::session::csrf_token(&session),
            };
            page.ctx.render(StatusCode::CONFLICT, &page)
        }
    }
}

/// Keeps the answers in the session (`interrupted`: kept just before the
/// submission, shown again should it fail).
fn keep_draft(
    session: &Session,
    state: &AppState,
    values: &RegisterValues,
    upload_id: Option<String>,
    submission_id: &str,
    interrupted: bool,
) {
    keep_register_draft(
        session,
        &RegisterDraft {
            values: values.clone(),
            upload_id,
            submission_id: submission_id.to_string(),
            saved: state.clock.timestamp(),
            interrupted,
        },
    );
}

/// A stored draft photo as the form shows it.
fn shown(stored: registration::StoredPhoto, lang: crate::i18n::Lang) -> DraftPhoto {
    DraftPhoto {
        upload_id: stored.id,
        file_name: stored.file_name,
        size_label: file_size_label(stored.size_bytes, lang),
    }
}

pub(super) async fn draft_photo(
    state: &AppState,
    id: String,
    lang: crate::i18n::Lang,
) -> Result<Option<DraftPhoto>, AppError> {
    Ok(registration::draft_photo(&state.services(), id)
        .await?
        .map(|stored| shown(stored, lang)))
}
