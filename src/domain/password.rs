use std::fmt;
use std::io::Read;

use super::{Email, Nik, Problem};

/// The 19,640 most common passwords (lower-case), as compiled by Royce
/// Williams in 2017 and shipped with Django, plus common Indonesian choices.
const COMMON_GZ: &[u8] = include_bytes!("common-passwords.txt.gz");
const COMMON_INDONESIAN: &[&str] = &[
    "bismillah",
    "bismillah123",
    "indonesia",
    "indonesia1",
    "indonesia123",
    "merdeka",
    "merdeka45",
    "garuda",
    "jakarta",
    "jakarta123",
    "rahasia",
    "rahasia123",
    "katasandi",
    "katasandi123",
    "sayang",
    "sayangku",
    "cintaku",
    "kamusayang",
    "emeterai",
    "e-meterai",
    "meterai",
    "meterai123",
    "pancasila",
    "alhamdulillah",
    "password1234",
];

/// The set of refused passwords, built once per application: one sorted
/// text, searched by halves. About 0.2 MiB, where a `HashSet<String>` of
/// the same 19,700 entries held 1.3 MiB of every instance's memory.
pub struct CommonPasswords {
    /// Every entry followed by a newline, in byte order.
    text: String,
    /// Where each entry starts in `text`.
    starts: Vec<u32>,
}

impl CommonPasswords {
    pub fn load() -> Self {
        let mut text = String::new();
        flate2::read::GzDecoder::new(COMMON_GZ)
            .read_to_string(&mut text)
            .expect("the embedded password list is valid gzip text");
        let mut entries: Vec<&str> = text
            .lines()
            .chain(COMMON_INDONESIAN.iter().copied())
            .collect();
        entries.sort_unstable();
        entries.dedup();
        let mut sorted = String::with_capacity(text.len() + 1024);
        let mut starts = Vec::with_capacity(entries.len());
        for entry in entries {
            starts.push(u32::try_from(sorted.len()).expect("the list is small"));
            sorted.push_str(entry);
            sorted.push('\n');
        }
        sorted.shrink_to_fit();
        CommonPasswords {
            text: sorted,
            starts,
        }
    }

    /// The entry that starts at `start`.
    fn entry_at(&self, start: u32) -> &str {
        let rest = &self.text[start as usize..];
        rest.split('\n').next().unwrap_or_default()
    }

    pub fn contains(&self, password: &str) -> bool {
        let wanted = password.to_lowercase();
        self.starts
            .binary_search_by(|&start| self.entry_at(start).cmp(wanted.as_str()))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// A password that meets the rules: at least 8 characters, at most 72 bytes
/// (bcrypt reads no further), not common, not the email or NIK. No
/// composition rules. Never printed.
pub struct Password(String);

impl Password {
    /// Checks the password and its confirmation. Problems with the
    /// confirmation (`PasswordConfirmEmpty`, `PasswordMismatch`) belong
    /// beside the confirmation field.
    pub fn parse(
        password: &str,
        confirmation: &str,
        email: Option<&Email>,
        nik: Option<&Nik>,
        name: Option<&str>,
        common: &CommonPasswords,
    ) -> Result<Password, Problem> {
        Self::parse_new(password, email, nik, name, common)?;
        if confirmation.is_empty() {
            return Err(Problem::PasswordConfirmEmpty);
        }
        if confirmation != password {
            return Err(Problem::PasswordMismatch);
        }
        Ok(Password(password.to_string()))
    }

    /// A new password and its confirmation, checked against what its
    /// owner's record holds (the email, NIK and name as stored): the one
    /// check of the link page and the password-reset page.
    pub fn parse_for_owner(
        password: &str,
        confirmation: &str,
        owner_email: &str,
        owner_nik: &str,
        owner_name: &str,
        common: &CommonPasswords,
        today: chrono::NaiveDate,
    ) -> Result<Password, Problem> {
        let email = Email::parse(owner_email).ok();
        let nik = Nik::parse(owner_nik, today).ok();
        Self::parse(
            password,
            confirmation,
            email.as_ref(),
            nik.as_ref(),
            Some(owner_name),
            common,
        )
    }

    fn parse_new(
        password: &str,
        email: Option<&Email>,
        nik: Option<&Nik>,
        name: Option<&str>,
        common: &CommonPasswords,
    ) -> Result<(), Problem> {
        if password.is_empty() {
            return Err(Problem::PasswordEmpty);
        }
        if password.trim().is_empty() {
            return Err(Problem::PasswordBlank);
        }
        if password.chars().count() < 8 {
            return Err(Problem::PasswordTooShort);
        }
        if password.len() > 72 {
            return Err(Problem::PasswordTooLong);
        }
        if common.contains(password) {
            return Err(Problem::PasswordCommon);
        }
        let lower = password.to_lowercase();
        if let Some(email) = email {
            let local = email.as_str().split('@').next().unwrap_or_default();
            if lower == email.as_str() || (local.chars().count() >= 4 && lower == local) {
                return Err(Problem::PasswordPersonal);
            }
        }
        if let Some(nik) = nik
            && lower.contains(nik.as_str())
        {
            return Err(Problem::PasswordPersonal);
        }
        // The citizen's own name, however it is spaced ("Siti Aminah",
        // "sitiaminah"): the first thing someone who knows them would try.
        if let Some(name) = name {
            let squash = |s: &str| -> String {
                s.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect()
            };
            let (typed, own) = (squash(password), squash(name));
            if !own.is_empty() && typed == own {
                return Err(Problem::PasswordName);
            }
        }
        Ok(())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::tests_support::parse;

    #[test]
    fn list_is_loaded() {
        let common = CommonPasswords::load();
        assert!(common.len() > 19_000);
        assert!(common.contains("PASSWORD"));
        assert!(common.contains("bismillah"));
    }

    #[test]
    fn every_listed_password_is_found_and_nothing_else() {
        let common = CommonPasswords::load();
        let mut text = String::new();
        flate2::read::GzDecoder::new(COMMON_GZ)
            .read_to_string(&mut text)
            .unwrap();
        for listed in text.lines().chain(COMMON_INDONESIAN.iter().copied()) {
            assert!(common.contains(listed), "{listed}");
        }
        for other in [
            "",
            "kopi tubruk pagi hari",
            "passwor",
            "password\n1",
            "zzzzzzzzzzzzzz",
        ] {
            assert!(!common.contains(other), "{other:?}");
        }
    }

    #[test]
    fn accepts_a_long_uncommon_password_without_composition_rules() {
        assert!(parse("kopi tubruk pagi hari", "kopi tubruk pagi hari").is_ok());
    }

    #[test]
    fn each_rule_has_its_own_problem() {
        assert_eq!(parse("", "").unwrap_err(), Problem::PasswordEmpty);
        assert_eq!(
            parse("pendek", "pendek").unwrap_err(),
            Problem::PasswordTooShort
        );
        assert_eq!(
            parse("password", "password").unwrap_err(),
            Problem::PasswordCommon
        );
        assert_eq!(
            parse("Bismillah", "Bismillah").unwrap_err(),
            Problem::PasswordCommon
        );
        assert_eq!(
            parse("budi.santoso@example.co.id", "budi.santoso@example.co.id").unwrap_err(),
            Problem::PasswordPersonal
        );
        assert_eq!(
            parse("x3201011708900003", "x3201011708900003").unwrap_err(),
            Problem::PasswordPersonal
        );
        assert_eq!(
            parse("kopi tubruk pagi", "").unwrap_err(),
            Problem::PasswordConfirmEmpty
        );
        assert_eq!(
            parse("kopi tubruk pagi", "kopi tubruk sore").unwrap_err(),
            Problem::PasswordMismatch
        );
    }

    #[test]
    fn length_is_counted_in_bytes_for_bcrypt() {
        // 80 ASCII bytes.
        let long = "a1b2c3d4".repeat(10);
        assert_eq!(parse(&long, &long).unwrap_err(), Problem::PasswordTooLong);
        // 30 characters of Javanese script are 90 bytes.
        let javanese = "ꦱꦼꦩꦁꦒꦶ".repeat(6);
        assert!(javanese.chars().count() < 72);
        assert_eq!(
            parse(&javanese, &javanese).unwrap_err(),
            Problem::PasswordTooLong
        );
        // Exactly 72 bytes is fine.
        let edge = "q7".repeat(36);
        assert!(parse(&edge, &edge).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = parse("kopi tubruk pagi hari", "kopi tubruk pagi hari").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}

#[cfg(test)]
mod new_rules {
    use super::tests_support::parse;
    use super::*;

    #[test]
    fn only_spaces_and_the_own_name_are_refused() {
        assert_eq!(
            parse("            ", "            ").unwrap_err(),
            Problem::PasswordBlank
        );
        assert_eq!(
            parse("Budi Santoso", "Budi Santoso").unwrap_err(),
            Problem::PasswordName
        );
        assert_eq!(
            parse("budisantoso", "budisantoso").unwrap_err(),
            Problem::PasswordName
        );
        // Containing the name among other words is allowed.
        assert!(parse("budi santoso suka kopi", "budi santoso suka kopi").is_ok());
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use chrono::NaiveDate;

    pub fn parse(p: &str, c: &str) -> Result<Password, Problem> {
        let common = CommonPasswords::load();
        let email = Email::parse("budi.santoso@example.co.id").unwrap();
        let nik = Nik::parse(
            "3201011708900003",
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        )
        .unwrap();
        Password::parse(
            p,
            c,
            Some(&email),
            Some(&nik),
            Some("Budi Santoso"),
            &common,
        )
    }
}
