//! `/account`: the signed-in citizen's own data (`services/own_data.rs`):
//! everything held, their own KTP photo, the devices signed in (each can
//! be signed out), the mails sent, who looked; the download of all of it
//! and the deletion of the account, each after the password again.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::error::AppError;
use crate::i18n::mail_kind_label;
use crate::routes::login::current_account;
use crate::services::accounts::Account;
use crate::services::own_data::{self, Deletion, Export};
use crate::state::AppState;
use crate::web::{Page, PageCtx, see_other};

/// The signed-in account, or the redirect to sign-in.
macro_rules! account_or_login {
    ($session:expr, $state:expr) => {
        match current_account(&$session, &$state).await? {
            Some(account) => account,
            None => {
                crate::session::sign_out(&$session);
                return Ok(see_other("/login"));
            }
        }
    };
}

/// The signed-in account for a posted form: the redirect to sign-in
/// without one, and `$stale` (returned) when the form's CSRF token does
/// not check out.
macro_rules! account_for_form {
    ($session:expr, $state:expr, $token:expr, $back:literal) => {
        account_for_form!($session, $state, $token, Ok(see_other($back)))
    };
    ($session:expr, $state:expr, $token:expr, $stale:expr) => {{
        let account = account_or_login!($session, $state);
        if !crate::session::csrf_valid(&$session, $token) {
            return $stale;
        }
        account
    }};
}

/// `account_for_form!` for a form posted from the password page
/// (`confirm_page`) of `$what`: a stale form shows that page again.
macro_rules! account_for_confirm {
    ($ctx:expr, $session:expr, $state:expr, $form:expr, $what:literal) => {
        account_for_form!(
            $session,
            $state,
            &$form.csrf_token,
            confirm_refused($ctx, &$session, &$state, $what, Refused::Stale)
        )
    };
}

pub struct SessionRow {
    pub id: String,
    pub this: bool,
    pub device: String,
    pub network: String,
    pub started: String,
    pub seen: String,
}

pub struct MailRow {
    pub kind: &'static str,
    pub when: String,
    pub state: String,
}

pub struct RecordRow {
    pub when: String,
    pub what: &'static str,
    pub record: String,
    pub reason: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    ctx: PageCtx,
    csrf: String,
    account: Account,
    created: String,
    /// Just made through the mailed link.
    welcome: bool,
    notice: &'static str,
    deletion_due: Option<String>,
    sessions: Vec<SessionRow>,
    mails: Vec<MailRow>,
    record: Vec<RecordRow>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    welcome: Option<String>,
    done: Option<String>,
}

/// The id hash of this browser's session record.
fn this_session(session: &Session) -> Option<String> {
    crate::session::signed_in(session)
        .map(|(_, _, sid)| crate::domain::link_token::hash_link_token(&sid))
}

pub async fn account(
    Page(_, ctx, session, state): Page,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, AppError> {
    let account = account_or_login!(session, state);
    let t = ctx.t;
    let lang = ctx.lang;
    let notice = match query.done.as_deref() {
        Some("kept") => t.own_done_kept,
        Some("cancelled") => t.own_done_cancelled,
        Some("requested") => t.own_done_requested,
        Some("already") => t.own_done_already,
        Some("session_ended") => t.own_done_session_ended,
        Some("phone") => t.own_done_phone,
        Some("email_sent") => t.own_done_email_sent,
        Some("email_changed") => t.own_done_email_changed,
        Some("correction") => t.own_done_correction,
        _ => "",
    };
    let overview = own_data::overview(&state.services(), &account, state.clock.now()).await?;
    let this = this_session(&session);
    let wib = crate::clock::wib_text;
    let page = AccountPage {
        csrf: crate::session::csrf_token(&session),
        created: wib(account.created_at),
        welcome: query.welcome.is_some(),
        notice,
        deletion_due: account.deletion_due_at.map(wib),
        sessions: overview
            .sessions
            .into_iter()
            .map(|s| SessionRow {
                this: this.as_deref() == Some(s.id_hash.as_str()),
                device: s
                    .device
                    .unwrap_or_else(|| t.own_session_unknown.to_string()),
                network: s
                    .network
                    .unwrap_or_else(|| t.own_session_unknown.to_string()),
                started: wib(s.created_at),
                seen: wib(s.last_seen_at),
                id: s.id_hash,
            })
            .collect(),
        mails: overview
            .mails
            .into_iter()
            .map(|m| MailRow {
                kind: mail_kind_label(&m.kind, lang),
                when: wib(m.created_at),
                state: match (&m.delivery, m.status.as_str()) {
                    (Some(delivery), _) => crate::i18n::delivery_label(delivery, lang).to_string(),
                    (None, status) => status.to_string(),
                },
            })
            .collect(),
        record: overview
            .record
            .into_iter()
            .map(|p| RecordRow {
                when: wib(p.at),
                what: crate::i18n::audit_action_label(&p.action, lang),
                record: p.record,
                reason: p.reason,
            })
            .collect(),
        account,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /account/photo`: the owner's own KTP photo, never cached.
pub async fn photo(Page(_, _, session, state): Page) -> Result<HttpResponse, AppError> {
    let Some(account) = current_account(&session, &state).await? else {
        return Err(AppError::Forbidden);
    };
    let Some((content_type, data)) = own_data::photo(&state.services(), &account).await? else {
        return Err(AppError::NotFound);
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-store, private"))
        .body(data))
}

#[derive(Deserialize)]
pub struct SessionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    session: String,
}

/// `POST /account/sessions/end`: signs one of the account's devices out.
pub async fn end_session(
    Page(_, _, session, state): Page,
    form: web::Form<SessionForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_form!(session, state, &form.csrf_token, "/account");
    let now = state.clock.now();
    own_data::end_session(&state.services(), &account.id, &form.session, now).await?;
    if this_session(&session).as_deref() == Some(form.session.as_str()) {
        crate::session::sign_out(&session);
        return Ok(see_other("/login"));
    }
    Ok(see_other("/account?done=session_ended"))
}

#[derive(Template)]
#[template(path = "account/confirm.html")]
struct ConfirmPage {
    ctx: PageCtx,
    csrf: String,
    /// `download` or `delete`.
    what: &'static str,
    days: u32,
    error: Option<&'static str>,
}

fn confirm_page(
    ctx: PageCtx,
    session: &Session,
    state: &AppState,
    what: &'static str,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let page = ConfirmPage {
        csrf: crate::session::csrf_token(session),
        what,
        days: state.settings.deletion_wait_days,
        error,
        ctx,
    };
    page.ctx.render(status, &page)
}

/// Why a download or deletion form comes back.
enum Refused {
    /// Its CSRF token is not this session's (a page left open, a form
    /// from elsewhere).
    Stale,
    WrongPassword,
}

fn confirm_refused(
    ctx: PageCtx,
    session: &Session,
    state: &AppState,
    what: &'static str,
    why: Refused,
) -> Result<HttpResponse, AppError> {
    let (text, status) = match why {
        Refused::Stale => (ctx.t.reg_stale_form, StatusCode::FORBIDDEN),
        Refused::WrongPassword => (ctx.t.own_password_wrong, StatusCode::UNPROCESSABLE_ENTITY),
    };
    confirm_page(ctx, session, state, what, Some(text), status)
}

/// `GET /account/download`, `GET /account/delete`: the password again.
pub async fn download_form(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let _account = account_or_login!(session, state);
    confirm_page(ctx, &session, &state, "download", None, StatusCode::OK)
}

pub async fn delete_form(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let _account = account_or_login!(session, state);
    confirm_page(ctx, &session, &state, "delete", None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/download`: the file, after the password.
pub async fn download(
    Page(req, ctx, session, state): Page,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_confirm!(ctx, session, state, form, "download");
    let client = crate::web::client(&req, &state);
    let now = state.clock.now();
    match own_data::export(
        &state.services(),
        &client,
        &account,
        form.password.clone(),
        now,
    )
    .await?
    {
        Export::File { name, body } => Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/json; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-store, private"))
            .insert_header((
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ))
            .body(body)),
        Export::WrongPassword => {
            confirm_refused(ctx, &session, &state, "download", Refused::WrongPassword)
        }
    }
}

/// `POST /account/delete`: the deletion asked for, after the password.
pub async fn delete(
    Page(_, ctx, session, state): Page,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_confirm!(ctx, session, state, form, "delete");
    let now = state.clock.now();
    match own_data::request_deletion(&state.services(), &account, form.password.clone(), now)
        .await?
    {
        Deletion::Requested { .. } => Ok(see_other("/account?done=requested")),
        Deletion::Already { .. } => Ok(see_other("/account?done=already")),
        Deletion::WrongPassword => {
            confirm_refused(ctx, &session, &state, "delete", Refused::WrongPassword)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /account/delete/cancel`: the account page's button.
pub async fn cancel_delete(
    Page(_, _, session, state): Page,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_form!(session, state, &form.csrf_token, "/account");
    own_data::cancel_deletion(&state.services(), &account.id).await?;
    Ok(see_other("/account?done=cancelled"))
}

// ------------------------------------------------------------- corrections

#[derive(Template)]
#[template(path = "account/correct.html")]
struct CorrectPage {
    ctx: PageCtx,
    csrf: String,
    phone: String,
    email: String,
    full_name: String,
    birth_date: String,
    errors: crate::forms::FormErrors,
}

async fn correct_page(
    ctx: PageCtx,
    session: &Session,
    account: &Account,
    errors: crate::forms::FormErrors,
    typed: Option<(&str, &str)>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (mut phone, mut email) = (crate::domain::display_phone(&account.phone), String::new());
    match typed {
        Some(("phone", value)) => phone = value.to_string(),
        Some(("email", value)) => email = value.to_string(),
        _ => {}
    }
    let page = CorrectPage {
        csrf: crate::session::csrf_token(session),
        phone,
        email,
        full_name: account.full_name.clone(),
        birth_date: account.birth_date.clone(),
        errors,
        ctx,
    };
    page.ctx.render(status, &page)
}

/// The correction page again, with the problem of the one field sent.
async fn refused(
    ctx: PageCtx,
    session: &Session,
    account: &Account,
    field: &'static str,
    typed: &str,
    problem: crate::domain::Problem,
) -> Result<HttpResponse, AppError> {
    let mut errors = crate::forms::FormErrors::new(ctx.lang);
    errors.add(field, problem);
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    correct_page(ctx, session, account, errors, Some((field, typed)), status).await
}

/// `GET /account/correct`: the phone, the email, and a correction of name
/// or birth date.
pub async fn correct(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let account = account_or_login!(session, state);
    let errors = crate::forms::FormErrors::new(ctx.lang);
    correct_page(ctx, &session, &account, errors, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    phone: String,
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// `POST /account/phone`: checked and normalised as at sign-up.
pub async fn phone(
    Page(_, ctx, session, state): Page,
    form: web::Form<PhoneForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_form!(session, state, &form.csrf_token, "/account/correct");
    match crate::domain::PhoneNumber::parse(&form.phone) {
        Ok(phone) => {
            own_data::change_phone(&state.services(), &account, &phone, state.clock.now()).await?;
            Ok(see_other("/account?done=phone"))
        }
        Err(problem) => refused(ctx, &session, &account, "phone", &form.phone, problem).await,
    }
}

/// `POST /account/email`: a link to the new address.
pub async fn email(
    Page(req, ctx, session, state): Page,
    form: web::Form<EmailForm>,
) -> Result<HttpResponse, AppError> {
    let account = account_for_form!(session, state, &form.csrf_token, "/account/correct");
    match crate::domain::Email::parse(&form.email) {
        Ok(email) if email.as_str() == account.email => Ok(see_other("/account")),
        Ok(email) => {
            let client = crate::web::client(&req, &state);
            let now = state.clock.now();
            own_data::start_email_change(&state.services(), &client, &account, &email, now).await?;
            Ok(see_other("/account?done=email_sent"))
        }
        Err(problem) => refused(ctx, &session, &account, "email", &form.email, problem).await,
    }
}

/// `POST /account/correction`: name and birth date with a new KTP photo,
/// for staff to decide.
pub async fn correction(
    Page(_, ctx, session, state): Page,
    payload: actix_multipart::Multipart,
) -> Result<HttpResponse, AppError> {
    let mut form = crate::forms::read_photo_form(payload, &["ktp_photo"], &state.settings).await?;
    let account = account_for_form!(session, state, form.text("csrf_token"), "/account/correct");
    let mut errors = crate::forms::FormErrors::new(ctx.lang);
    let name = crate::domain::FullName::parse(form.text("full_name"))
        .map_err(|p| errors.add("full_name", p))
        .ok();
    let birth =
        crate::domain::BirthDate::parse(form.text("birth_date"), state.clock.today_in_indonesia())
            .map_err(|p| errors.add("birth_date", p))
            .ok();
    let svc = state.services();
    let photo = match form.take_file("ktp_photo") {
        None => {
            errors.add("ktp_photo", crate::domain::Problem::PhotoMissing);
            None
        }
        Some(file) if errors.is_empty() => {
            match crate::services::registration::check_photo(&svc, file.data, file.truncated)
                .await?
            {
                Ok(photo) => Some(photo),
                Err(problem) => {
                    errors.add("ktp_photo", problem);
                    None
                }
            }
        }
        Some(_) => None,
    };
    let (Some(name), Some(birth), Some(photo), true) = (name, birth, photo, errors.is_empty())
    else {
        return correct_page(
            ctx,
            &session,
            &account,
            errors,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let note = form.text("note").to_string();
    own_data::request_correction(
        &svc,
        &account,
        &name,
        &birth,
        &note,
        photo,
        state.clock.now(),
    )
    .await?;
    Ok(see_other("/account?done=correction"))
}

#[derive(Template)]
#[template(path = "account/email_confirm.html")]
struct EmailConfirmPage {
    ctx: PageCtx,
    csrf: String,
    token: String,
    /// The new address, masked; `None`: the link does not work.
    masked: Option<String>,
    taken: bool,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /account/email/confirm?token=...`: what the link does (nothing
/// changes until the button).
pub async fn email_confirm_page(
    Page(_, ctx, session, state): Page,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let masked =
        own_data::look_email_change(&state.services(), &query.token, state.clock.now()).await?;
    let status = if masked.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let page = EmailConfirmPage {
        csrf: crate::session::csrf_token(&session),
        token: query.token.clone(),
        masked,
        taken: false,
        ctx,
    };
    page.ctx.render(status, &page)
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
}

/// `POST /account/email/confirm`: the new address becomes the account's.
pub async fn email_confirm(
    Page(_, ctx, session, state): Page,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, AppError> {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other(&format!(
            "/account/email/confirm?token={}",
            urlencoding_safe(&form.token)
        )));
    }
    let changed =
        own_data::confirm_email_change(&state.services(), &form.token, state.clock.now()).await?;
    let (masked, taken, status) = match changed {
        own_data::EmailChanged::Done { .. } => {
            return Ok(see_other("/account?done=email_changed"));
        }
        own_data::EmailChanged::Taken => (None, true, StatusCode::CONFLICT),
        own_data::EmailChanged::Gone => (None, false, StatusCode::NOT_FOUND),
    };
    let page = EmailConfirmPage {
        csrf: crate::session::csrf_token(&session),
        token: String::new(),
        masked,
        taken,
        ctx,
    };
    page.ctx.render(status, &page)
}

/// A token as it may go back into a URL: only its hex digits.
fn urlencoding_safe(token: &str) -> String {
    token
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(64)
        .collect()
}
