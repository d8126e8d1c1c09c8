use super::{Problem, strip_separators};

/// Tax number (optional): the old 15-digit form, whose 9th digit is a Luhn
/// check over the first nine, or the 16-digit form used since 2024 (for
/// citizens, their NIK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npwp(String);

impl Npwp {
    /// `Ok(None)` when left empty.
    pub fn parse_optional(input: &str) -> Result<Option<Npwp>, Problem> {
        let digits = strip_separators(input.trim());
        if digits.is_empty() {
            return Ok(None);
        }
        if !digits.chars().all(|c| c.is_ascii_digit())
            || !(digits.len() == 15 || digits.len() == 16)
        {
            return Err(Problem::NpwpFormat);
        }
        if digits.len() == 15 && !luhn_valid(&digits[..9]) {
            return Err(Problem::NpwpCheck);
        }
        Ok(Some(Npwp(digits)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_format_needs_its_check_digit() {
        assert_eq!(
            Npwp::parse_optional("01.312.166.0-091.000")
                .unwrap()
                .unwrap()
                .as_str(),
            "013121660091000"
        );
        assert_eq!(
            Npwp::parse_optional("01.312.166.1-091.000"),
            Err(Problem::NpwpCheck)
        );
    }

    #[test]
    fn new_format_and_empty() {
        assert!(Npwp::parse_optional("3201011708900003").unwrap().is_some());
        assert_eq!(Npwp::parse_optional("  "), Ok(None));
        assert_eq!(Npwp::parse_optional("12345"), Err(Problem::NpwpFormat));
        assert_eq!(
            Npwp::parse_optional("01.312.166.0-091.00X"),
            Err(Problem::NpwpFormat)
        );
    }
}
