use chrono::{Datelike, NaiveDate};

use super::Problem;

/// A date of birth: a real date, in the past, after 1900.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    /// Parses `YYYY-MM-DD` (what `<input type="date">` sends); also accepts
    /// `DD-MM-YYYY` and `DD/MM/YYYY`, as typed where the browser shows a
    /// plain text box.
    pub fn parse(input: &str, today: NaiveDate) -> Result<BirthDate, Problem> {
        let input = input.trim();
        if input.is_empty() {
            return Err(Problem::BirthDateEmpty);
        }
        let date = NaiveDate::parse_from_str(input, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(input, "%d-%m-%Y"))
            .or_else(|_| NaiveDate::parse_from_str(input, "%d/%m/%Y"))
            .map_err(|_| Problem::BirthDateFormat)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    #[test]
    fn parses_iso_and_local_forms() {
        let expected = NaiveDate::from_ymd_opt(1990, 8, 17).unwrap();
        for input in ["1990-08-17", "17-08-1990", "17/08/1990", " 1990-08-17 "] {
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
            BirthDate::parse("2027-01-01", today()),
            Err(Problem::BirthDateFuture)
        );
        assert_eq!(
            BirthDate::parse("1899-12-31", today()),
            Err(Problem::BirthDateTooEarly)
        );
    }
}
