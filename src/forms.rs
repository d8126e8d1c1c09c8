//! Form helpers: the errors of a submitted form, and reading a multipart
//! body without losing the other answers when the file is too large.

use std::collections::HashMap;

use actix_multipart::Multipart;
use futures_util::StreamExt;

use crate::domain::Problem;
use crate::error::AppError;
use crate::i18n::Lang;

/// The problems of one submitted form, in the order of the form's fields.
pub struct FormErrors {
    lang: Lang,
    items: Vec<(&'static str, Problem)>,
}

impl FormErrors {
    pub fn new(lang: Lang) -> Self {
        FormErrors {
            lang,
            items: Vec::new(),
        }
    }

    /// The errors `items` make, each field's first problem only.
    pub fn with(lang: Lang, items: Vec<(&'static str, Problem)>) -> Self {
        let mut errors = FormErrors::new(lang);
        for (field, problem) in items {
            errors.add(field, problem);
        }
        errors
    }

    /// Every `(field, problem)`, in the order they were found.
    pub fn items(&self) -> &[(&'static str, Problem)] {
        &self.items
    }

    pub fn add(&mut self, field: &'static str, problem: Problem) {
        if self.get(field).is_none() {
            self.items.push((field, problem));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The message beside `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&'static str> {
        self.items
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, p)| p.text(self.lang))
    }

    /// `(field id, message)` for the error summary, in `order`.
    pub fn summary(&self, order: &[&str]) -> Vec<(&'static str, &'static str)> {
        let mut items: Vec<_> = self
            .items
            .iter()
            .map(|(f, p)| (*f, p.text(self.lang)))
            .collect();
        items.sort_by_key(|(f, _)| order.iter().position(|o| o == f).unwrap_or(usize::MAX));
        items
    }

    /// The names of the failing fields (never their values), for logs.
    pub fn fields(&self) -> Vec<&'static str> {
        self.items.iter().map(|(f, _)| *f).collect()
    }
}

pub struct UploadedFile {
    pub file_name: String,
    pub data: Vec<u8>,
    /// The file was larger than the limit; only its start was kept.
    pub truncated: bool,
}

pub struct MultipartForm {
    pub fields: HashMap<String, String>,
    /// The file fields that arrived with a file, by name.
    pub files: HashMap<String, UploadedFile>,
}

impl MultipartForm {
    pub fn text(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    /// The file sent in field `name`, taken out of the form.
    pub fn take_file(&mut self, name: &str) -> Option<UploadedFile> {
        self.files.remove(name)
    }
}

const MAX_TEXT_FIELD: usize = 8 * 1024;
const MAX_FIELDS: usize = 40;

/// Reads a multipart form: text fields (each at most 8 KiB) and the file
/// fields `file_fields`, of each of which at most `max_file` bytes are kept; a longer file is read
/// to its end and marked truncated, so the form can come back with every
/// other answer and a precise message. The whole body is already bounded by
/// EMETERAI_MAX_BODY_BYTES.
pub async fn read_multipart(
    mut payload: Multipart,
    file_fields: &[&str],
    max_file: usize,
    max_total: usize,
) -> Result<MultipartForm, AppError> {
    let malformed = |_| AppError::BadRequest("malformed multipart body");
    // Counted as it arrives, so a body without a length (chunked) meets the
    // same cap as one that declares it.
    let mut total = 0usize;
    let mut count_bytes = |n: usize| {
        total += n;
        if total > max_total {
            Err(AppError::TooLarge)
        } else {
            Ok(())
        }
    };
    let mut fields = HashMap::new();
    let mut files = HashMap::new();
    let mut count = 0;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(malformed)?;
        count += 1;
        if count > MAX_FIELDS {
            return Err(AppError::BadRequest("too many form fields"));
        }
        let name = field.name().unwrap_or_default().to_string();
        if file_fields.contains(&name.as_str()) {
            let file_name: String = field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .map(|n| n.chars().filter(|c| !c.is_control()).take(120).collect())
                .unwrap_or_default();
            let mut data = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(malformed)?;
                count_bytes(chunk.len())?;
                if truncated || data.len() + chunk.len() > max_file {
                    // Too large: nothing of it is kept from here on.
                    data = Vec::new();
                    truncated = true;
                } else {
                    data.extend_from_slice(&chunk);
                }
            }
            // A file input left empty arrives as a part with no name and no bytes.
            if !(data.is_empty() && !truncated && file_name.is_empty()) {
                files.insert(
                    name,
                    UploadedFile {
                        file_name,
                        data,
                        truncated,
                    },
                );
            }
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(malformed)?;
                count_bytes(chunk.len())?;
                if value.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(AppError::BadRequest("form field too long"));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value)
                .map_err(|_| AppError::BadRequest("form field is not UTF-8"))?;
            fields.insert(name, value);
        }
    }
    Ok(MultipartForm { fields, files })
}

/// `read_multipart` for the forms that carry photos (registration, the
/// "someone else used my NIK" report): each file at most
/// `EMETERAI_KTP_UPLOAD_MAX_BYTES`, the body at most the photo forms' limit.
pub async fn read_photo_form(
    payload: Multipart,
    file_fields: &[&str],
    settings: &crate::config::Settings,
) -> Result<MultipartForm, AppError> {
    let max_file = usize::try_from(settings.ktp_upload_max_bytes).unwrap_or(usize::MAX);
    let max_total = usize::try_from(settings.register_body_limit()).unwrap_or(usize::MAX);
    read_multipart(payload, file_fields, max_file, max_total).await
}

/// A human-readable file size: "812 KB", "1,4 MB" (decimal comma in Indonesian).
pub fn file_size_label(bytes: i64, lang: Lang) -> String {
    let label = if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", (bytes as f64 / 1024.0).ceil() as i64)
    };
    match lang {
        Lang::Id => label.replace('.', ","),
        Lang::En => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_first_problem_per_field_and_sort_by_form_order() {
        let mut errors = FormErrors::new(Lang::En);
        errors.add("email", Problem::EmailFormat);
        errors.add("nik", Problem::NikLength);
        errors.add("nik", Problem::NikDate);
        assert_eq!(errors.get("nik"), Some("NIK must be 16 digits"));
        let summary = errors.summary(&["nik", "email"]);
        assert_eq!(summary[0].0, "nik");
        assert_eq!(summary[1].0, "email");
        assert_eq!(errors.fields(), ["email", "nik"]);
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(file_size_label(812 * 1024, Lang::Id), "812 KB");
        assert_eq!(file_size_label(1_468_006, Lang::Id), "1,4 MB");
        assert_eq!(file_size_label(1_468_006, Lang::En), "1.4 MB");
    }
}

/// The form that sets a password through a mailed link (verification or
/// reset): the link's token, the password twice, and the CSRF token.
#[derive(serde::Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_confirm: String,
}

/// A sign-in form, a citizen's or a staff member's: email, password and
/// the CSRF token.
#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// A new-password form's problem, on the field it belongs to (the
/// confirmation's own problems on the confirmation), with its summary.
pub struct PasswordErrors {
    pub password: Option<&'static str>,
    pub confirm: Option<&'static str>,
    pub summary: Vec<(&'static str, &'static str)>,
}

impl PasswordErrors {
    pub fn new(problem: Option<Problem>, lang: Lang) -> Self {
        let confirm = matches!(
            problem,
            Some(Problem::PasswordConfirmEmpty | Problem::PasswordMismatch)
        );
        let field = if confirm {
            "password_confirm"
        } else {
            "password"
        };
        let text = problem.map(|p| p.text(lang));
        PasswordErrors {
            password: text.filter(|_| !confirm),
            confirm: text.filter(|_| confirm),
            summary: text.map(|t| vec![(field, t)]).unwrap_or_default(),
        }
    }
}
