//! Registration: the form (`GET /register`), its submission
//! (`POST /register`) and the check-your-email page.

pub mod check_email;
pub mod post;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::errors::AppError;
use crate::forms::FormErrors;
use crate::startup::AppState;
use crate::web::PageCtx;

/// The fields in the order of the form, for the error summary.
pub const FIELD_ORDER: &[&str] = &[
    "full_name",
    "nik",
    "birth_date",
    "email",
    "phone",
    "npwp",
    "ktp_photo",
    "agree_terms",
];

/// What the citizen typed, kept when the form comes back (never passwords).
#[derive(Default, Clone)]
pub struct RegisterValues {
    pub full_name: String,
    pub nik: String,
    pub birth_date: String,
    pub email: String,
    pub phone: String,
    pub npwp: String,
    pub agree_terms: bool,
}

/// A photo already received with an earlier submission of this draft.
pub struct DraftPhoto {
    pub upload_id: String,
    pub file_name: String,
    pub size_label: String,
}

#[derive(Template)]
#[template(path = "register/form.html")]
pub struct RegisterPage {
    pub ctx: PageCtx,
    pub csrf: String,
    pub submission_id: String,
    pub v: RegisterValues,
    pub errors: FormErrors,
    pub summary: Vec<(&'static str, &'static str)>,
    pub photo: Option<DraftPhoto>,
    pub stale: bool,
    /// The failure's reference code, when the form comes back.
    pub reference: Option<String>,
}

impl RegisterPage {
    pub fn render(self, status: StatusCode) -> Result<HttpResponse, AppError> {
        self.ctx.render(status, &self)
    }

    pub fn has_errors(&self) -> bool {
        !self.summary.is_empty()
    }
}

/// Bumped whenever the form's fields change: forms rendered before that
/// come back as out of date (values kept) instead of failing oddly.
pub const FORM_VERSION: &str = "2";

/// How long a rendered form stays valid.
const FORM_TTL_SECS: i64 = 24 * 3600;

/// A new signed submission id: `uuid.issued.signature`. The signature
/// covers the form version, so forms from an older portal are recognised.
pub fn new_submission_id(state: &AppState) -> String {
    let id = uuid::Uuid::new_v4();
    let issued = chrono::Utc::now().timestamp();
    let signature = sign(state, &id.to_string(), issued);
    format!("{id}.{issued}.{signature}")
}

fn sign(state: &AppState, id: &str, issued: i64) -> String {
    state
        .failures
        .keyed_hash("form", &format!("{FORM_VERSION}.{id}.{issued}"))[..20]
        .to_string()
}

/// The idempotency key of a posted submission id, or `None` when it is
/// missing, forged, from another form version or older than a day.
pub fn check_submission_id(state: &AppState, posted: &str) -> Option<String> {
    let mut parts = posted.splitn(3, '.');
    let (id, issued, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let id = uuid::Uuid::parse_str(id).ok()?.to_string();
    let issued: i64 = issued.parse().ok()?;
    let age = chrono::Utc::now().timestamp() - issued;
    let expected = sign(state, &id, issued);
    (crate::session::constant_time_eq(expected.as_bytes(), signature.as_bytes())
        && (-300..=FORM_TTL_SECS).contains(&age))
    .then_some(id)
}

/// `GET /register`: an empty form with a fresh `submission_id`.
pub async fn get(
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    RegisterPage {
        csrf: crate::session::csrf_token(&session),
        submission_id: new_submission_id(&state),
        reference: None,
        v: RegisterValues::default(),
        errors: FormErrors::new(lang),
        summary: Vec::new(),
        photo: None,
        stale: false,
        ctx,
    }
    .render(StatusCode::OK)
}
