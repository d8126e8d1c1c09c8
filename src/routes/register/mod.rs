//! Registration: the form (`GET /register`), its submission
//! (`POST /register`) and the check-your-email page.

pub mod check_email;
pub mod post;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::errors::AppError;
use crate::forms::FormErrors;
use crate::web::PageCtx;

/// The fields in the order of the form, for the error summary.
pub const FIELD_ORDER: &[&str] = &[
    "full_name",
    "nik",
    "birth_date",
    "email",
    "phone",
    "password",
    "password_confirm",
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
}

impl RegisterPage {
    pub fn render(self, status: StatusCode) -> Result<HttpResponse, AppError> {
        self.ctx.render(status, &self)
    }

    pub fn has_errors(&self) -> bool {
        !self.summary.is_empty()
    }
}

pub fn new_submission_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `GET /register`: an empty form with a fresh `submission_id`.
pub async fn get(ctx: PageCtx, session: Session) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    RegisterPage {
        csrf: crate::session::csrf_token(&session),
        submission_id: new_submission_id(),
        v: RegisterValues::default(),
        errors: FormErrors::new(lang),
        summary: Vec::new(),
        photo: None,
        stale: false,
        ctx,
    }
    .render(StatusCode::OK)
}
