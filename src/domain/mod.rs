//! Domain types parsed from form input. Each can only hold a valid value
//! (parse, don't validate); each failure is a [`Problem`] with the words a
//! citizen reads beside the field.

mod birth_date;
mod email;
mod full_name;
mod ktp_photo;
pub mod link_token;
mod nik;
mod npwp;
mod password;
mod phone;
mod problem;
pub mod sealed;
pub mod second_factor;

pub use birth_date::BirthDate;
pub use email::{Email, mask_email as email_mask};
pub use full_name::FullName;
pub use ktp_photo::{KTP_PHOTO_MAX_BYTES, KTP_UPLOAD_MAX_BYTES, KtpPhoto};
pub use nik::{Nik, mask_nik};
pub use npwp::Npwp;
pub use password::{CommonPasswords, Password};
pub use phone::{PhoneNumber, display_phone};
pub use problem::Problem;

/// A NIK as typed with its separators removed (not checked).
pub fn strip_nik(input: &str) -> String {
    strip_separators(input.trim())
}

/// Removes the separators people type inside numbers.
pub(crate) fn strip_separators(input: &str) -> String {
    input
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '\t' | '(' | ')' | '/'))
        .collect()
}
