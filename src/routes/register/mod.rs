//! Registration: the form (`GET /register`), its submission
//! (`POST /register`) and the check-your-email page.

pub mod check_email;
pub mod post;
pub mod remind;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::domain::{BirthDate, Email, FullName, Nik, Npwp, PhoneNumber, Problem};
use crate::error::AppError;
use crate::forms::FormErrors;
use crate::services::registration::Answers;
use crate::state::AppState;
use crate::web::{Page, PageCtx};

/// A register form that came back, kept (encrypted in the cookie, like the
/// rest of the session) so that switching language shows it again.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RegisterDraft {
    pub values: RegisterValues,
    pub upload_id: Option<String>,
    pub submission_id: String,
    pub saved: i64,
    /// Kept just before the submission, for a database that fails under it
    /// (a 503): the next visit to the form shows the answers again.
    #[serde(default)]
    pub interrupted: bool,
}

const DRAFT_KEY: &str = "register_draft";
/// Larger drafts (only made by hand) are not kept: the cookie must stay
/// well under the 4 KB browsers allow.
const DRAFT_MAX_BYTES: usize = 1500;
/// A draft older than this is not shown again.
const DRAFT_TTL_SECS: i64 = 3600;

pub fn keep_register_draft(session: &Session, draft: &RegisterDraft) {
    match serde_json::to_string(draft) {
        Ok(json) if json.len() <= DRAFT_MAX_BYTES => {
            let _ = session.insert(DRAFT_KEY, draft);
        }
        _ => {
            session.remove(DRAFT_KEY);
        }
    }
}

pub fn register_draft(session: &Session, now: i64) -> Option<RegisterDraft> {
    let draft = session.get::<RegisterDraft>(DRAFT_KEY).ok().flatten()?;
    let age = now - draft.saved;
    (0..=DRAFT_TTL_SECS).contains(&age).then_some(draft)
}

pub fn forget_register_draft(session: &Session) {
    session.remove(DRAFT_KEY);
}

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
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct RegisterValues {
    pub full_name: String,
    pub nik: String,
    pub birth_date: String,
    pub email: String,
    pub phone: String,
    pub npwp: String,
    pub agree_terms: bool,
}

/// The form's checks (all but the photo's), in one place for the
/// submission and for a draft shown again in the other language: each
/// problem is added to `errors`; the answers when every field parsed.
pub fn check_values(
    values: &RegisterValues,
    errors: &mut FormErrors,
    today: chrono::NaiveDate,
) -> Option<Answers> {
    let mut check = |field: &'static str, problem: Option<Problem>| {
        if let Some(p) = problem {
            errors.add(field, p);
        }
    };
    let name = FullName::parse(&values.full_name);
    check("full_name", name.as_ref().err().copied());
    let nik = Nik::parse(&values.nik, today);
    check("nik", nik.as_ref().err().copied());
    let birth = BirthDate::parse(&values.birth_date, today);
    check("birth_date", birth.as_ref().err().copied());
    if let (Ok(nik), Ok(birth)) = (&nik, &birth)
        && !nik.agrees_with(birth.date())
    {
        check("birth_date", Some(Problem::NikBirthMismatch));
    }
    let email = Email::parse(&values.email);
    check("email", email.as_ref().err().copied());
    let phone = PhoneNumber::parse(&values.phone);
    check("phone", phone.as_ref().err().copied());
    let npwp = Npwp::parse_optional(&values.npwp);
    check("npwp", npwp.as_ref().err().copied());
    if !values.agree_terms {
        check("agree_terms", Some(Problem::TermsRequired));
    }
    Some(Answers {
        name: name.ok()?,
        nik: nik.ok()?,
        birth: birth.ok()?,
        email: email.ok()?,
        phone: phone.ok()?,
        npwp: npwp.ok()?,
    })
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
    let issued = state.clock.timestamp();
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
    let age = state.clock.timestamp() - issued;
    let expected = sign(state, &id, issued);
    (bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        signature.as_bytes(),
    )) && (-300..=FORM_TTL_SECS).contains(&age))
    .then_some(id)
}

/// `GET /register`: an empty form with a fresh `submission_id`; after the
/// language switch, the form that came back (answers, photo and mistakes)
/// in the other language.
pub async fn get(Page(_, ctx, session, state): Page) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    let mut errors = FormErrors::new(lang);
    let mut values = RegisterValues::default();
    let mut photo = None;
    let mut submission_id = None;
    if let Some(draft) = register_draft(&session, state.clock.timestamp())
        && (ctx.language_switched() || draft.interrupted)
    {
        if let Some(id) = draft.upload_id {
            photo = post::draft_photo(&state, id, lang).await?;
        }
        check_values(&draft.values, &mut errors, state.clock.today_in_indonesia());
        if photo.is_none() {
            errors.add("ktp_photo", Problem::PhotoMissing);
        }
        values = draft.values;
        submission_id = check_submission_id(&state, &draft.submission_id)
            .is_some()
            .then_some(draft.submission_id);
    }
    let summary = errors.summary(FIELD_ORDER);
    let csrf = crate::session::csrf_token(&session);
    let submission_id = submission_id.unwrap_or_else(|| new_submission_id(&state));
    // The empty form, the busiest page of a deadline day: only the two
    // tokens differ between visitors, so its text is compressed once.
    let spliced = summary.is_empty() && photo.is_none();
    let (csrf_field, submission_field) = if spliced {
        (
            crate::compress::placeholder(0),
            crate::compress::placeholder(1),
        )
    } else {
        (csrf.clone(), submission_id.clone())
    };
    let page = RegisterPage {
        csrf: csrf_field,
        submission_id: submission_field,
        reference: None,
        v: values,
        errors,
        summary,
        photo,
        stale: false,
        ctx,
    };
    if spliced {
        page.ctx
            .render_spliced(StatusCode::OK, &page, &[&csrf, &submission_id])
    } else {
        page.render(StatusCode::OK)
    }
}

#[cfg(test)]
mod tests {
    use super::FIELD_ORDER;
    use crate::i18n::{Lang, field_label};

    #[test]
    fn staff_read_every_field_of_the_form_by_its_label() {
        for code in FIELD_ORDER {
            assert_ne!(field_label(code, Lang::Id), "lainnya", "{code}");
            assert_ne!(field_label(code, Lang::En), "other", "{code}");
        }
    }
}
