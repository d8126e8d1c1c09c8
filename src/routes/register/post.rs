//! `POST /register`: validate, then create the account, its verification
//! token and mail in one transaction, idempotently per `submission_id`.

use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::Duration;

use super::{DraftPhoto, FIELD_ORDER, RegisterPage, RegisterValues, new_submission_id};
use crate::db::accounts::{self, NewAccount, NewUpload, RegisterOutcome, Registration};
use crate::domain::{
    BirthDate, Email, FullName, KTP_PHOTO_MAX_BYTES, KtpPhoto, Nik, Npwp, Password, PhoneNumber,
    Problem,
};
use crate::errors::AppError;
use crate::forms::{FormErrors, MultipartForm, file_size_label, read_multipart};
use crate::startup::AppState;
use crate::web::PageCtx;

/// Today in Indonesia's western time zone (UTC+7), for birth-date checks.
pub fn today_in_indonesia() -> chrono::NaiveDate {
    (chrono::Utc::now() + Duration::hours(7)).date_naive()
}

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
}

pub async fn post(
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    payload: Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = read_multipart(payload, "ktp_photo", KTP_PHOTO_MAX_BYTES).await?;
    let lang = ctx.lang;
    let values = values_of(&form);
    let submission_id = match uuid::Uuid::parse_str(form.text("submission_id")) {
        Ok(id) => id.to_string(),
        Err(_) => new_submission_id(),
    };
    let csrf_ok = crate::session::csrf_valid(&session, form.text("csrf_token"));
    let mut errors = FormErrors::new(lang);
    let now = crate::mail::now();

    // The photo first: a valid new photo is kept with the draft even when
    // other answers need correcting.
    let mut photo = match form.text("ktp_upload_id") {
        "" => None,
        id => draft_photo(&state, id.to_string(), lang).await?,
    };
    match form.file.take() {
        Some(file) => match KtpPhoto::parse(file.data, file.truncated) {
            Ok(ktp) => photo = Some(store_upload(&state, ktp, file.file_name, now, lang).await?),
            Err(problem) => errors.add("ktp_photo", problem),
        },
        None if photo.is_none() => errors.add("ktp_photo", Problem::PhotoMissing),
        None => {}
    }

    let today = today_in_indonesia();
    let mut check = |field: &'static str, result: Result<(), Problem>| {
        if let Err(p) = result {
            errors.add(field, p);
        }
    };
    let name = FullName::parse(&values.full_name);
    check("full_name", name.as_ref().map(|_| ()).map_err(|p| *p));
    let nik = Nik::parse(&values.nik, today);
    check("nik", nik.as_ref().map(|_| ()).map_err(|p| *p));
    let birth = BirthDate::parse(&values.birth_date, today);
    check("birth_date", birth.map(|_| ()));
    if let (Ok(nik), Ok(birth)) = (&nik, &birth)
        && !nik.agrees_with(birth.date())
    {
        check("birth_date", Err(Problem::NikBirthMismatch));
    }
    let email = Email::parse(&values.email);
    check("email", email.as_ref().map(|_| ()).map_err(|p| *p));
    let phone = PhoneNumber::parse(&values.phone);
    check("phone", phone.as_ref().map(|_| ()).map_err(|p| *p));
    let password = Password::parse(
        form.text("password"),
        form.text("password_confirm"),
        email.as_ref().ok(),
        nik.as_ref().ok(),
        &state.common_passwords,
    );
    if let Err(p) = &password {
        let field = match p {
            Problem::PasswordConfirmEmpty | Problem::PasswordMismatch => "password_confirm",
            _ => "password",
        };
        check(field, Err(*p));
    }
    let npwp = Npwp::parse_optional(&values.npwp);
    check("npwp", npwp.as_ref().map(|_| ()).map_err(|p| *p));
    if !values.agree_terms {
        check("agree_terms", Err(Problem::TermsRequired));
    }

    let (
        Ok(name),
        Ok(nik),
        Ok(birth),
        Ok(email),
        Ok(phone),
        Ok(password),
        Ok(npwp),
        Some(draft),
        true,
        true,
    ) = (
        name,
        nik,
        birth,
        email,
        phone,
        password,
        npwp,
        photo.as_ref(),
        errors.is_empty(),
        csrf_ok,
    )
    else {
        let status = if csrf_ok {
            tracing::info!(fields = ?errors.fields(), "registration form returned with errors");
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            tracing::info!("registration form was stale (CSRF token expired or unknown)");
            StatusCode::FORBIDDEN
        };
        let summary = errors.summary(FIELD_ORDER);
        return RegisterPage {
            csrf: crate::session::csrf_token(&session),
            submission_id,
            v: values,
            errors,
            summary,
            photo,
            stale: !csrf_ok,
            ctx,
        }
        .render(status);
    };

    let password_hash = hash_password(&state, password).await?;
    let (token, token_hash) = crate::session::new_link_token();
    let account_id = uuid::Uuid::new_v4().to_string();
    let mail = crate::mail::verification_mail(
        &state.settings,
        lang,
        &account_id,
        email.as_str(),
        name.as_str(),
        &token,
        now,
    )
    .map_err(AppError::internal)?;
    let registration_email = email.clone();
    let upload_id = draft.upload_id.clone();
    let ttl = Duration::hours(i64::from(state.settings.verify_token_ttl_hours));
    let pool = state.pool.clone();
    let outcome = web::block(move || {
        let mut conn = pool.get()?;
        let registration = Registration {
            submission_id: &submission_id,
            account: NewAccount {
                id: account_id,
                email: email.as_str().to_string(),
                nik: nik.as_str().to_string(),
                full_name: name.as_str().to_string(),
                birth_date: birth.to_iso(),
                phone: phone.as_str().to_string(),
                npwp: npwp.map(|n| n.as_str().to_string()),
                password_hash,
                ktp_upload_id: upload_id,
                lang: lang.code().to_string(),
                created_at: now,
            },
            token_hash: &token_hash,
            token_expires_at: now + ttl,
            mail,
        };
        accounts::register(&mut conn, &registration).map_err(AppError::from)
    })
    .await??;

    match outcome {
        RegisterOutcome::Registered { email, replay, .. } => {
            if replay {
                tracing::info!("registration submitted again; answering as the first time");
            } else {
                tracing::info!("account registered; verification mail queued");
                state.wake_mailer.notify_one();
            }
            crate::session::set_pending_email(&session, &email);
            Ok(see_other("/register/check-email"))
        }
        RegisterOutcome::EmailPending { .. } => {
            crate::routes::verify::resend_verification(&state, &registration_email, lang).await?;
            crate::session::set_pending_email(&session, registration_email.as_str());
            Ok(see_other("/register/check-email?notice=pending"))
        }
        RegisterOutcome::EmailTaken => {
            tracing::info!("registration refused: email belongs to a verified account");
            TakenPage { ctx, nik: false }.render_conflict()
        }
        RegisterOutcome::NikTaken => {
            tracing::info!("registration refused: NIK belongs to a verified account");
            TakenPage { ctx, nik: true }.render_conflict()
        }
    }
}

impl TakenPage {
    fn render_conflict(self) -> Result<HttpResponse, AppError> {
        self.ctx.render(StatusCode::CONFLICT, &self)
    }
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}

/// bcrypt at the configured cost, on the blocking pool, with no more hashes
/// at once than EMETERAI_HASH_CONCURRENCY so a surge cannot starve the
/// database calls.
pub async fn hash_password(
    state: &web::Data<AppState>,
    password: Password,
) -> Result<String, AppError> {
    let _permit = state
        .hash_permits
        .acquire()
        .await
        .map_err(AppError::internal)?;
    let cost = state.settings.bcrypt_cost;
    web::block(move || bcrypt::hash(password.expose(), cost))
        .await?
        .map_err(AppError::internal)
}

async fn store_upload(
    state: &web::Data<AppState>,
    ktp: KtpPhoto,
    file_name: String,
    now: chrono::NaiveDateTime,
    lang: crate::i18n::Lang,
) -> Result<DraftPhoto, AppError> {
    let pool = state.pool.clone();
    let id = uuid::Uuid::new_v4().to_string();
    let size = ktp.data().len() as i64;
    let name = if file_name.is_empty() {
        "ktp".to_string()
    } else {
        file_name
    };
    let (upload_id, stored_name) = (id.clone(), name.clone());
    web::block(move || {
        let mut conn = pool.get()?;
        accounts::insert_upload(
            &mut conn,
            &NewUpload {
                id: &upload_id,
                file_name: &stored_name,
                content_type: ktp.content_type(),
                size_bytes: size,
                data: ktp.data(),
                created_at: now,
            },
        )
        .map_err(AppError::from)
    })
    .await??;
    Ok(DraftPhoto {
        upload_id: id,
        file_name: name,
        size_label: file_size_label(size, lang),
    })
}

async fn draft_photo(
    state: &web::Data<AppState>,
    id: String,
    lang: crate::i18n::Lang,
) -> Result<Option<DraftPhoto>, AppError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Ok(None);
    }
    let pool = state.pool.clone();
    let found = web::block(move || {
        let mut conn = pool.get()?;
        accounts::find_draft_upload(&mut conn, &id).map_err(AppError::from)
    })
    .await??;
    Ok(found.map(|u| DraftPhoto {
        upload_id: u.id,
        file_name: u.file_name,
        size_label: file_size_label(u.size_bytes, lang),
    }))
}
