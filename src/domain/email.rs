use std::str::FromStr;

use super::Problem;

/// An email address, trimmed and lower-cased: stored and compared in this
/// form, so `Budi@Example.COM ` and `budi@example.com` are one address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, Problem> {
        let normalised = input.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(Problem::EmailEmpty);
        }
        if normalised.len() > 254 {
            return Err(Problem::EmailTooLong);
        }
        // The crate checks RFC 5322 syntax; we also want a domain with a dot
        // and no quoted or bracketed oddities a citizen would never type.
        let parsed =
            email_address::EmailAddress::from_str(&normalised).map_err(|_| Problem::EmailFormat)?;
        let domain = parsed.domain();
        let plausible = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !normalised.contains(['"', '[', ']', ' ', '(', ')', '<', '>', ',', ';', ':', '\\']);
        if !plausible {
            return Err(Problem::EmailFormat);
        }
        Ok(Email(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with its domain corrected, when the domain is one typing
    /// slip away from a common mail provider's (`gmail.con`,
    /// `gmial.com`, `yahoo.co.od`): shown as "did you mean ...?".
    pub fn suggestion(&self) -> Option<String> {
        const COMMON: [&str; 10] = [
            "gmail.com",
            "yahoo.com",
            "yahoo.co.id",
            "ymail.com",
            "hotmail.com",
            "outlook.com",
            "live.com",
            "icloud.com",
            "outlook.co.id",
            "mail.com",
        ];
        let (local, domain) = self.0.rsplit_once('@')?;
        if COMMON.contains(&domain) {
            return None;
        }
        COMMON
            .iter()
            .map(|known| (strsim::damerau_levenshtein(domain, known), known))
            .filter(|(distance, _)| *distance == 1)
            .min()
            .map(|(_, known)| format!("{local}@{known}"))
    }

    /// `bu***@example.com`: enough for the owner to recognise it.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

/// Masks a stored address, keeping the first two characters of the local
/// part and the domain.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let keep: String = local.chars().take(2).collect();
            format!("{keep}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_domain_slips_get_a_suggestion() {
        let suggest = |typed: &str| Email::parse(typed).unwrap().suggestion();
        assert_eq!(suggest("budi@gmail.con").as_deref(), Some("budi@gmail.com"));
        assert_eq!(suggest("budi@gmial.com").as_deref(), Some("budi@gmail.com"));
        assert_eq!(
            suggest("budi@yahoo.co.od").as_deref(),
            Some("budi@yahoo.co.id")
        );
        assert_eq!(suggest("budi@gmail.com"), None);
        assert_eq!(suggest("budi@kemenkeu.go.id"), None);
        assert_eq!(suggest("budi@mail.com"), None);
        assert_eq!(suggest("budi@yahoo.co.uk"), None);
    }

    #[test]
    fn normalises_case_and_space() {
        let email = Email::parse("  Budi.Santoso@Example.CO.ID ").unwrap();
        assert_eq!(email.as_str(), "budi.santoso@example.co.id");
        assert_eq!(email.masked(), "bu***@example.co.id");
        assert_eq!(email, Email::parse("budi.santoso@example.co.id").unwrap());
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        assert_eq!(Email::parse("   "), Err(Problem::EmailEmpty));
        for bad in [
            "budi",
            "budi@",
            "@example.com",
            "budi@example",
            "budi @example.com",
            "budi@example..com",
            "\"b\"@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(Problem::EmailFormat), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(Problem::EmailTooLong));
    }
}
