use super::{Problem, strip_separators};

/// An Indonesian mobile number in E.164 form, `+628...`.
///
/// Hand-written rather than the `phonenumber` crate: the domain rule is one
/// pattern (`8[1-35-9]` and 7-10 more digits after the country code), and
/// that crate's metadata and regex engine add build time to accept numbers
/// (landlines, other countries) the portal must refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<PhoneNumber, Problem> {
        let compact = strip_separators(input.trim());
        if compact.is_empty() {
            return Err(Problem::PhoneEmpty);
        }
        let national = compact
            .strip_prefix("+62")
            .or_else(|| compact.strip_prefix("62"))
            // "+62 0812 ...": the country code with the trunk 0 kept.
            .map(|rest| rest.strip_prefix('0').unwrap_or(rest))
            .or_else(|| compact.strip_prefix('0'))
            .ok_or(Problem::PhoneFormat)?;
        let bytes = national.as_bytes();
        let valid = (9..=12).contains(&bytes.len())
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes[0] == b'8'
            && matches!(bytes[1], b'1'..=b'3' | b'5'..=b'9');
        if !valid {
            return Err(Problem::PhoneFormat);
        }
        Ok(PhoneNumber(format!("+62{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored `+628...` number as people read it: `+62 812-3456-7890`.
/// Anything else is shown as it is.
pub fn display_phone(e164: &str) -> String {
    match e164.strip_prefix("+62") {
        Some(national) if national.len() >= 8 && national.bytes().all(|b| b.is_ascii_digit()) => {
            format!(
                "+62 {}-{}-{}",
                &national[..3],
                &national[3..7],
                &national[7..]
            )
        }
        _ => e164.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_in_groups() {
        assert_eq!(display_phone("+6281234567890"), "+62 812-3456-7890");
        assert_eq!(display_phone("+62881234567"), "+62 881-2345-67");
        assert_eq!(display_phone("0812"), "0812");
    }

    #[test]
    fn every_written_form_becomes_e164() {
        for input in [
            "0812-3456-7890",
            "+62 812 3456 7890",
            "6281234567890",
            "(0812) 3456.7890",
            "+62 0812 3456 7890",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "+6281234567890",
                "{input}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("0881 234 567").unwrap().as_str(),
            "+62881234567"
        );
    }

    #[test]
    fn refuses_what_is_not_an_indonesian_mobile() {
        assert_eq!(PhoneNumber::parse(""), Err(Problem::PhoneEmpty));
        for bad in [
            "021 555 1234",      // Jakarta landline
            "0840 1234 5678",    // 84 is not a mobile prefix
            "0812 345",          // too short
            "0812 3456 7890 12", // too long
            "+65 8123 4567",     // Singapore
            "0812-3456-789O",    // letter O
        ] {
            assert_eq!(PhoneNumber::parse(bad), Err(Problem::PhoneFormat), "{bad}");
        }
    }
}
