//! `POST /register`: reads the form, checks it, and hands a valid one to
//! `services::registration` (which stores the pending registration, its
//! photo, a link and its mail in one transaction, idempotently per
//! `submission_id`); a form with mistakes comes back with every answer.

use crate::web::see_other;
use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{
    DraftPhoto, FIELD_ORDER, RegisterPage, RegisterValues, check_submission_id, new_submission_id,
};
use crate::domain::Problem;
use crate::error::AppError;
use crate::forms::{FormErrors, MultipartForm, file_size_label, read_photo_form};
use crate::services::failures::{Failure, reason};
use crate::services::registration::{self, NewPhoto, NewRegistration, SubmitOutcome, Taken};
use crate::state::AppState;
use crate::web::PageCtx;

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
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    payload: Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = read_photo_form(payload, &["ktp_photo"], &state.settings).await?;
    let svc = state.services();
    let client = crate::web::client(&req, &state);
    let lang = ctx.lang;
    let values = values_of(&form);
    let csrf_ok = crate::session::csrf_valid(&session, form.text("csrf_token"));
    let posted_submission = form.text("submission_id").to_string();
    let submission_key = check_submission_id(&state, &posted_submission);
    let submission_valid = submission_key.is_some();
    let fresh = csrf_ok && submission_valid;
    let mut errors = FormErrors::new(lang);
    let now = state.clock.now();
    // Should the database fail under what follows (a failover: the limits
    // are counted in it first), the 503 page leaves the answers in the
    // session: the form comes back filled in, with the same submission id
    // (a first attempt that did commit is then recognised, not doubled).
    // Every answer below replaces or forgets it.
    if fresh {
        super::keep_register_draft(
            &session,
            &super::RegisterDraft {
                values: values.clone(),
                upload_id: Some(form.text("ktp_upload_id"))
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
                submission_id: posted_submission.clone(),
                saved: state.clock.timestamp(),
                interrupted: true,
            },
        );
    }

    // The photo: a draft's earlier upload, or a new one (kept in memory
    // until we know whether the registration is stored with it, or the form
    // comes back and it is kept with the draft).
    let mut photo = match form.text("ktp_upload_id") {
        "" => None,
        id => draft_photo(&state, id.to_string(), lang).await?,
    };
    let mut new_photo: Option<NewPhoto> = None;
    // Admission (storage, budget, per-client limit) comes before the
    // expensive work, once per request; a post that fails the CSRF or form
    // check gets no decoding at all.
    let mut admitted = false;
    match form.take_file("ktp_photo") {
        Some(_) if !fresh => {}
        Some(file) => {
            registration::admit_upload(&svc, &client).await?;
            admitted = true;
            match registration::check_photo(&svc, file.data, file.truncated).await? {
                Ok(ktp) => new_photo = Some(NewPhoto::new(ktp, file.file_name)),
                Err(problem) => errors.add("ktp_photo", problem),
            }
        }
        None if photo.is_none() => errors.add("ktp_photo", Problem::PhotoMissing),
        None => {}
    }

    let super::CheckedValues {
        name,
        nik,
        birth,
        email,
        phone,
        npwp,
    } = super::check_values(&values, &mut errors, state.clock.today_in_indonesia());

    let (
        Ok(name),
        Ok(nik),
        Ok(birth),
        Ok(email),
        Ok(phone),
        Ok(npwp),
        true,
        true,
        Some(submission_key),
    ) = (
        name,
        nik,
        birth,
        email,
        phone,
        npwp,
        photo.is_some() || new_photo.is_some(),
        errors.is_empty() && fresh,
        submission_key,
    )
    else {
        // A new valid photo stays with the draft, so it need not be sent
        // again; a request that failed the CSRF or form check stores nothing.
        if let Some(new) = new_photo.take() {
            let replaces = photo.as_ref().map(|p| p.upload_id.clone());
            let session_key = crate::session::csrf_token(&session);
            if let Some(kept) =
                registration::keep_draft_photo(&svc, &session_key, new, replaces, now).await?
            {
                photo = Some(shown(kept, lang));
            }
        }
        // The form comes back with every answer.
        let failure = Failure::new(if !fresh {
            reason::STALE_FORM
        } else if matches!(
            errors.get_problem("ktp_photo"),
            Some(
                Problem::PhotoTooLarge
                    | Problem::PhotoType
                    | Problem::PhotoUnreadable
                    | Problem::PhotoTooSmall
                    | Problem::PhotoTooManyPixels
                    | Problem::PhotoHeic
            )
        ) {
            reason::UPLOAD_REJECTED
        } else {
            reason::VALIDATION
        })
        .fields(errors.fields())
        .email(&values.email)
        .nik(&values.nik);
        let status = if fresh {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::FORBIDDEN
        };
        let reference =
            registration::form_came_back(&svc, &client, failure, &posted_submission).await?;
        let summary = errors.summary(FIELD_ORDER);
        // A still-valid submission id stays, so a retry of the corrected
        // form is still recognised as the same submission.
        let submission_id = if submission_valid {
            posted_submission
        } else {
            new_submission_id(&state)
        };
        super::keep_register_draft(
            &session,
            &super::RegisterDraft {
                values: values.clone(),
                upload_id: photo.as_ref().map(|p| p.upload_id.clone()),
                submission_id: submission_id.clone(),
                saved: state.clock.timestamp(),
                interrupted: false,
            },
        );
        return RegisterPage {
            csrf: crate::session::csrf_token(&session),
            submission_id,
            v: values,
            errors,
            summary,
            photo,
            stale: !fresh,
            reference,
            ctx,
        }
        .render(status);
    };

    if !admitted {
        registration::admit_upload(&svc, &client).await?;
    }
    let (taken_email, taken_nik) = (email.clone(), nik.clone());
    let outcome = registration::submit(
        &svc,
        NewRegistration {
            submission_key,
            name,
            nik,
            birth,
            email,
            phone,
            npwp,
            lang,
            draft_upload_id: photo.as_ref().map(|p| p.upload_id.clone()),
            new_photo,
        },
        now,
    )
    .await?;

    let safe = state.settings.enumeration_safe;
    match outcome {
        SubmitOutcome::Registered {
            email,
            replaced,
            mail_sent,
            ..
        } => {
            crate::session::set_pending_email(&session, &email);
            super::forget_register_draft(&session);
            // "Replaced" tells that the address was waiting: limited like
            // the "already registered" answers; past the limit the page
            // says nothing more than for a new registration.
            let reveal = replaced && registration::may_say_replaced(&svc, &client, &email).await?;
            Ok(see_other(match (replaced, mail_sent) {
                (true, _) if reveal => "/register/check-email?notice=replaced",
                (false, false) if !safe => "/register/check-email?notice=cooldown",
                _ => "/register/check-email",
            }))
        }
        SubmitOutcome::EmailTaken | SubmitOutcome::NikTaken => {
            let nik_taken = outcome == SubmitOutcome::NikTaken;
            match registration::taken(
                &svc,
                &client,
                lang,
                &taken_email,
                &taken_nik,
                nik_taken,
                now,
            )
            .await?
            {
                Taken::Mailed => {
                    crate::session::set_pending_email(&session, taken_email.as_str());
                    super::forget_register_draft(&session);
                    Ok(see_other("/register/check-email"))
                }
                Taken::Said { reference } => {
                    super::forget_register_draft(&session);
                    let remind = if nik_taken {
                        crate::session::set_remind_nik(&session, taken_nik.as_str());
                        Some(crate::services::reminder::holder(&svc, taken_nik.as_str()).await?)
                    } else {
                        None
                    };
                    let page = TakenPage {
                        ctx,
                        nik: nik_taken,
                        reference,
                        remind,
                        csrf: crate::session::csrf_token(&session),
                    };
                    page.ctx.render(StatusCode::CONFLICT, &page)
                }
            }
        }
    }
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
