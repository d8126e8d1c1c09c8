use chrono::{Datelike, NaiveDate};

use super::Problem;

/// A date of birth: a real date, in the past, after 1900.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    /// Parses `YYYY-MM-DD` (what `<input type="date">` sends) and the ways
    /// people write a date as it is printed on the KTP: `17-08-1990`,
    /// `17/08/1990`, `17.08.1990`, `17 08 1990`, `17 Agustus 1990` (or
    /// `17 Agu 1990`, English month names too) and a two-digit year
    /// (`17-08-90`: the most recent such year that is not in the future).
    pub fn parse(input: &str, today: NaiveDate) -> Result<BirthDate, Problem> {
        let input = input.trim();
        if input.is_empty() {
            return Err(Problem::BirthDateEmpty);
        }
        let parts: Vec<&str> = input
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| !p.is_empty())
            .collect();
        let [a, b, c] = parts[..] else {
            return Err(Problem::BirthDateFormat);
        };
        let number = |text: &str| text.parse::<u32>().ok().filter(|_| text.len() <= 4);
        let (year, month, day) = if a.len() == 4 && a.bytes().all(|b| b.is_ascii_digit()) {
            (a, b, c)
        } else {
            (c, b, a)
        };
        let month = number(month)
            .or_else(|| month_by_name(month))
            .ok_or(Problem::BirthDateFormat)?;
        let day = number(day).ok_or(Problem::BirthDateFormat)?;
        let year = match (year.len(), number(year)) {
            (2, Some(short)) => {
                let this_century = today.year() - today.year() % 100 + short as i32;
                if this_century > today.year() {
                    this_century - 100
                } else {
                    this_century
                }
            }
            (4, Some(full)) => full as i32,
            _ => return Err(Problem::BirthDateFormat),
        };
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(Problem::BirthDateFormat)?;
        if date > today {
            return Err(Problem::BirthDateFuture);
        }
        if date.year() < 1900 {
            return Err(Problem::BirthDateTooEarly);
        }
        Ok(BirthDate(date))
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// `YYYY-MM-DD`, as stored.
    pub fn to_iso(self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

/// A month written as a word, Indonesian or English, whole or from its
/// first three letters ("Agustus", "agu", "Aug", "Peb").
fn month_by_name(word: &str) -> Option<u32> {
    const NAMES: [&[&str]; 12] = [
        &["januari", "january"],
        &["februari", "pebruari", "february"],
        &["maret", "march"],
        &["april"],
        &["mei", "may"],
        &["juni", "june"],
        &["juli", "july"],
        &["agustus", "august"],
        &["september"],
        &["oktober", "october"],
        &["november", "nopember"],
        &["desember", "december"],
    ];
    let word = word.to_lowercase();
    if word.chars().count() < 3 {
        return None;
    }
    NAMES
        .iter()
        .position(|names| names.iter().any(|name| name.starts_with(&word)))
        .map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    #[test]
    fn parses_iso_and_local_forms() {
        let expected = NaiveDate::from_ymd_opt(1990, 8, 17).unwrap();
        for input in [
            "1990-08-17",
            "17-08-1990",
            "17/08/1990",
            " 1990-08-17 ",
            "17.08.1990",
            "17 08 1990",
            "17 Agustus 1990",
            "17 agu 1990",
            "17 August 1990",
            "17-08-90",
            "17-8-1990",
        ] {
            assert_eq!(
                BirthDate::parse(input, today()).unwrap().date(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_cannot_be_a_birth_date() {
        assert_eq!(BirthDate::parse("", today()), Err(Problem::BirthDateEmpty));
        assert_eq!(
            BirthDate::parse("1990-02-30", today()),
            Err(Problem::BirthDateFormat)
        );
        assert_eq!(
            BirthDate::parse("17 Agustus", today()),
            Err(Problem::BirthDateFormat)
        );
        assert_eq!(
            BirthDate::parse("17 Ag 1990", today()),
            Err(Problem::BirthDateFormat)
        );
        assert_eq!(
            BirthDate::parse("17-08-990", today()),
            Err(Problem::BirthDateFormat)
        );
        // A two-digit year is the latest one not in the future.
        assert_eq!(
            BirthDate::parse("01-01-26", today()).unwrap().to_iso(),
            "2026-01-01"
        );
        assert_eq!(
            BirthDate::parse("01-01-27", today()).unwrap().to_iso(),
            "1927-01-01"
        );
        assert_eq!(
            BirthDate::parse("2027-01-01", today()),
            Err(Problem::BirthDateFuture)
        );
        assert_eq!(
            BirthDate::parse("1899-12-31", today()),
            Err(Problem::BirthDateTooEarly)
        );
    }
}
