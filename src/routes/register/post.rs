//! `POST /register`: validate, then store the pending registration, its
//! photo, a link and its mail in one transaction, idempotently per
//! `submission_id`. No password here (it is chosen through the mailed link),
//! so no hashing: a sign-up costs a few milliseconds.

use crate::web::see_other;
use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Duration;

use super::{
    DraftPhoto, FIELD_ORDER, RegisterPage, RegisterValues, check_submission_id, new_submission_id,
};
use crate::db::accounts::{self, NewUpload};
use crate::db::registrations::{self, Details, PhotoUpload, Submission, SubmitOutcome};
use crate::domain::{KtpPhoto, Problem};
use crate::error::AppError;
use crate::failures::{self, Failure, reason};
use crate::forms::{FormErrors, MultipartForm, file_size_label, read_multipart};
use crate::state::AppState;
use crate::web::PageCtx;

/// Tries of one form with mistakes that are neither logged nor given a
/// reference code (typos the citizen fixes alone).
pub const FREE_FORM_TRIES: i64 = 2;

/// Draft photos one browser session may leave within a draft's lifetime.
pub const DRAFTS_PER_SESSION: i64 = 20;

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
}

pub async fn post(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    payload: Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = read_multipart(
        payload,
        "ktp_photo",
        usize::try_from(state.settings.ktp_upload_max_bytes).unwrap_or(usize::MAX),
        usize::try_from(state.settings.register_body_limit()).unwrap_or(usize::MAX),
    )
    .await?;
    let lang = ctx.lang;
    let values = values_of(&form);
    let csrf_ok = crate::session::csrf_valid(&session, form.text("csrf_token"));
    let posted_submission = form.text("submission_id").to_string();
    let submission_key = check_submission_id(&state, &posted_submission);
    let submission_valid = submission_key.is_some();
    let fresh = csrf_ok && submission_valid;
    let mut errors = FormErrors::new(lang);
    let now = crate::db::now();

    // The photo: a draft's earlier upload, or a new one (kept in memory
    // until we know whether the registration is stored with it, or the form
    // comes back and it is kept with the draft).
    let mut photo = match form.text("ktp_upload_id") {
        "" => None,
        id => draft_photo(&state, id.to_string(), lang).await?,
    };
    let mut new_photo: Option<(KtpPhoto, String)> = None;
    // Admission (storage, budget, per-client limit) comes before the
    // expensive work, once per request; a post that fails the CSRF or form
    // check gets no decoding at all.
    let mut admitted = false;
    match form.file.take() {
        Some(_) if !fresh => {}
        Some(file) => {
            admit_upload(&state, &req).await?;
            admitted = true;
            match judge_photo(&state, file.data, file.truncated).await? {
                Ok(ktp) => new_photo = Some((ktp, photo_name(file.file_name))),
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
    } = super::check_values(&values, &mut errors);

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
        if let Some((ktp, file_name)) = new_photo.take()
            && draft_allowed(&state, &session).await?
        {
            let replaced = photo.take();
            photo = Some(store_upload(&state, ktp, file_name, now, lang).await?);
            // One draft photo per form: the one it replaces goes.
            if let Some(old) = replaced {
                state
                    .db(move |conn| accounts::delete_draft_upload(conn, &old.upload_id))
                    .await?;
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
        let (prefix, status) = if fresh {
            ("DFT", StatusCode::UNPROCESSABLE_ENTITY)
        } else {
            ("STL", StatusCode::FORBIDDEN)
        };
        // Typos are for the citizen to fix, not for support: a form with
        // mistakes is logged (and shows a reference code to quote on the
        // phone) from its third try in an hour, when the citizen is stuck.
        // Stale forms and refused photos are logged at once.
        let stuck = failure.reason != reason::VALIDATION
            || !failures::allow(
                &state.failure_ctx(),
                vec![(
                    format!(
                        "form-tries:{}",
                        state.failures.keyed_hash("submission", &posted_submission)
                    ),
                    FREE_FORM_TRIES,
                )],
            )
            .await?
            .is_allowed();
        let reference = if stuck {
            Some(crate::web::record_failure(&state, &req, prefix, failure).await)
        } else {
            None
        };
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
                saved: chrono::Utc::now().timestamp(),
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
        admit_upload(&state, &req).await?;
    }
    let (token, token_hash) = crate::domain::link_token::new_link_token();
    let registration_id = uuid::Uuid::new_v4().to_string();
    let mail = crate::mail::verification_mail(
        &state.settings,
        lang,
        &registration_id,
        email.as_str(),
        name.as_str(),
        &token,
        now,
    )
    .map_err(AppError::internal)?;
    let registration_email = email.clone();
    let registration_nik = nik.as_str().to_string();
    let nik_hash = state.failures.nik_hash(nik.as_str());
    let draft_upload_id = photo.as_ref().map(|p| p.upload_id.clone());
    let ttl = Duration::hours(i64::from(state.settings.verify_token_ttl_hours));
    let cooldown = Duration::seconds(i64::from(state.settings.resend_cooldown_secs));
    let outcome = state
        .db(move |conn| {
            let upload_id = uuid::Uuid::new_v4().to_string();
            let new_photo = new_photo.as_ref().map(|(ktp, file_name)| PhotoUpload {
                id: &upload_id,
                file_name,
                content_type: ktp.content_type(),
                data: ktp.data(),
            });
            registrations::submit(
                conn,
                &Submission {
                    submission_id: &submission_key,
                    new_id: &registration_id,
                    details: Details {
                        email: email.as_str().to_string(),
                        nik: nik.as_str().to_string(),
                        nik_hash: Some(nik_hash),
                        full_name: name.as_str().to_string(),
                        birth_date: birth.to_iso(),
                        phone: phone.as_str().to_string(),
                        npwp: npwp.map(|n| n.as_str().to_string()),
                        lang: lang.code().to_string(),
                    },
                    draft_upload_id: draft_upload_id.as_deref().unwrap_or_default(),
                    new_photo,
                    token_hash: &token_hash,
                    token_expires_at: now + ttl,
                    mail,
                    cooldown,
                    now,
                },
            )
        })
        .await?;

    let failure = |reason| {
        Failure::new(reason)
            .email(registration_email.as_str())
            .nik(&registration_nik)
    };
    let safe = state.settings.enumeration_safe;
    match outcome {
        SubmitOutcome::Registered {
            email,
            replaced,
            mail_sent,
            replay,
            ..
        } => {
            if replay {
                tracing::info!("registration submitted again; answering as the first time");
            } else if mail_sent {
                tracing::info!(replaced, "registration stored; verification mail queued");
                state.wake_mailer.notify_one();
            } else {
                tracing::info!("registration data replaced; link held back by the cooldown");
            }
            crate::session::set_pending_email(&session, &email);
            super::forget_register_draft(&session);
            // "Replaced" tells that the address was waiting: limited like
            // the "already registered" answers; past the limit the page
            // says nothing more than for a new registration.
            let reveal = replaced
                && !safe
                && failures::allow_for_client_and_address(
                    &state.failure_ctx(),
                    &crate::web::client(&req, &state),
                    "pending",
                    &email,
                )
                .await?
                .is_allowed();
            Ok(see_other(match (replaced, mail_sent) {
                (true, _) if reveal => "/register/check-email?notice=replaced",
                (false, false) if !safe => "/register/check-email?notice=cooldown",
                _ => "/register/check-email",
            }))
        }
        SubmitOutcome::EmailTaken | SubmitOutcome::NikTaken => {
            let nik_taken = outcome == SubmitOutcome::NikTaken;
            let why = if nik_taken {
                reason::NIK_TAKEN
            } else {
                reason::EMAIL_TAKEN
            };
            if safe {
                // The page looks like a success; the guidance goes to the
                // mailbox, where only its owner reads it.
                let reference = crate::web::record_failure(&state, &req, "REG", failure(why)).await;
                queue_guidance_mail(
                    &state,
                    lang,
                    registration_email.as_str(),
                    nik_taken,
                    &reference,
                    now,
                )
                .await?;
                crate::session::set_pending_email(&session, registration_email.as_str());
                super::forget_register_draft(&session);
                return Ok(see_other("/register/check-email"));
            }
            // Saying "already registered" reveals that an account exists, so
            // it is rate-limited per client, per address and per NIK.
            let limit = &state.settings;
            let allowance = failures::allow(
                &state.failure_ctx(),
                vec![
                    (
                        format!(
                            "taken-ip:{}",
                            failures::client_key(
                                &state.failures,
                                &crate::web::client(&req, &state)
                            )
                        ),
                        limit.rate_limit_per_ip_hour,
                    ),
                    (
                        format!(
                            "taken-email:{}",
                            state
                                .failures
                                .keyed_hash("email", registration_email.as_str())
                        ),
                        limit.rate_limit_per_email_hour,
                    ),
                    (
                        format!("taken-nik:{}", state.failures.nik_hash(&registration_nik)),
                        limit.rate_limit_per_email_hour,
                    ),
                ],
            )
            .await?;
            if let failures::Allowance::Refused { retry_after_secs } = allowance {
                let reference =
                    crate::web::record_failure(&state, &req, "LIM", failure(reason::RATE_LIMITED))
                        .await;
                return Err(AppError::RateLimited {
                    reference,
                    retry_after_secs,
                });
            }
            let reference = crate::web::record_failure(&state, &req, "REG", failure(why)).await;
            tracing::info!(reference = %reference, reason = why, "registration refused: already registered");
            let page = TakenPage {
                ctx,
                nik: nik_taken,
                reference,
            };
            page.ctx.render(StatusCode::CONFLICT, &page)
        }
    }
}

/// Before a photo is stored (with a registration or a draft): the SQLite
/// file is still the one opened and writable (503 otherwise), the budget
/// for photos no account owns yet (503 past it), and the per-client hourly
/// limit (429), counted in the database so it holds across instances.
async fn admit_upload(state: &web::Data<AppState>, req: &HttpRequest) -> Result<(), AppError> {
    state.check_storage()?;
    if state.upload_budget_reached() {
        tracing::warn!("upload budget reached: registration refused");
        return Err(AppError::unavailable("upload storage budget reached"));
    }
    let key = format!(
        "register-ip:{}",
        failures::client_key(&state.failures, &crate::web::client(req, state))
    );
    let limit = state.settings.registrations_per_ip_hour;
    if let failures::Allowance::Refused { retry_after_secs } =
        failures::allow(&state.failure_ctx(), vec![(key, limit)]).await?
    {
        let reference =
            crate::web::record_failure(state, req, "LIM", Failure::new(reason::RATE_LIMITED)).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    Ok(())
}

/// Draft photos kept per browser session (on top of the per-address
/// limit counted at admission) within the hours a draft lives: past it a
/// form still comes back with every answer, but the photo must be chosen
/// again.
async fn draft_allowed(state: &web::Data<AppState>, session: &Session) -> Result<bool, AppError> {
    let key = format!(
        "draft-session:{}",
        state
            .failures
            .keyed_hash("session", &crate::session::csrf_token(session))
    );
    let decision = state
        .db(move |conn| {
            failures::rate_allow(
                conn,
                &key,
                crate::db::now(),
                chrono::Duration::hours(crate::mail::DRAFT_HOURS),
                DRAFTS_PER_SESSION,
            )
        })
        .await?;
    if !decision.is_allowed() {
        tracing::warn!("draft photo not kept: per-session bound reached");
    }
    Ok(decision.is_allowed())
}

async fn queue_guidance_mail(
    state: &web::Data<AppState>,
    lang: crate::i18n::Lang,
    to: &str,
    nik: bool,
    reference: &str,
    now: chrono::NaiveDateTime,
) -> Result<(), AppError> {
    let mail = crate::mail::guidance_mail(&state.settings, lang, to, nik, reference, now)
        .map_err(AppError::internal)?;
    state
        .db(move |conn| crate::db::outbox::insert_mail(conn, &mail))
        .await?;
    state.wake_mailer.notify_one();
    Ok(())
}

async fn store_upload(
    state: &web::Data<AppState>,
    ktp: KtpPhoto,
    file_name: String,
    now: chrono::NaiveDateTime,
    lang: crate::i18n::Lang,
) -> Result<DraftPhoto, AppError> {
    let id = uuid::Uuid::new_v4().to_string();
    let size = ktp.data().len() as i64;
    let name = file_name;
    let (upload_id, stored_name) = (id.clone(), name.clone());
    state
        .db(move |conn| {
            accounts::insert_upload(
                conn,
                &NewUpload {
                    id: &upload_id,
                    file_name: &stored_name,
                    content_type: ktp.content_type(),
                    size_bytes: size,
                    data: ktp.data(),
                    created_at: now,
                },
            )
        })
        .await?;
    Ok(DraftPhoto {
        upload_id: id,
        file_name: name,
        size_label: file_size_label(size, lang),
    })
}

/// Decodes and normalises a photo on the blocking pool, at most
/// `EMETERAI_PHOTO_CONCURRENCY` at once (a flood of camera photos waits its
/// turn instead of decoding all at once and exhausting memory).
async fn judge_photo(
    state: &web::Data<AppState>,
    data: Vec<u8>,
    truncated: bool,
) -> Result<Result<KtpPhoto, Problem>, AppError> {
    let _permit = state
        .photo_permits
        .acquire()
        .await
        .map_err(AppError::internal)?;
    Ok(web::block(move || KtpPhoto::parse(&data, truncated)).await?)
}

/// The name a photo is shown under: as sent, or "ktp" when the browser
/// sent none.
fn photo_name(file_name: String) -> String {
    if file_name.is_empty() {
        "ktp".to_string()
    } else {
        file_name
    }
}

pub(super) async fn draft_photo(
    state: &web::Data<AppState>,
    id: String,
    lang: crate::i18n::Lang,
) -> Result<Option<DraftPhoto>, AppError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Ok(None);
    }
    let found = state
        .db(move |conn| accounts::find_draft_upload(conn, &id))
        .await?;
    Ok(found.map(|u| DraftPhoto {
        upload_id: u.id,
        file_name: u.file_name,
        size_label: file_size_label(u.size_bytes, lang),
    }))
}
