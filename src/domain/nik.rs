use chrono::{Datelike, NaiveDate};

use super::{Problem, strip_separators};

/// The 38 province codes a NIK can start with.
const PROVINCES: [&str; 38] = [
    "11", "12", "13", "14", "15", "16", "17", "18", "19", "21", "31", "32", "33", "34", "35", "36",
    "51", "52", "53", "61", "62", "63", "64", "65", "71", "72", "73", "74", "75", "76", "81", "82",
    "91", "92", "93", "94", "95", "96",
];

/// Nomor Induk Kependudukan: 16 digits `PP RR SS DDMMYY NNNN`. The checks
/// prove plausibility (province, a real birth date, a serial), not that the
/// number was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nik {
    digits: String,
    birth: NaiveDate,
    female: bool,
}

impl Nik {
    /// Parses a NIK typed with or without spaces, dots or hyphens. `today`
    /// decides whether YY means 19YY or 20YY.
    pub fn parse(input: &str, today: NaiveDate) -> Result<Nik, Problem> {
        let digits = strip_separators(input.trim());
        if digits.is_empty() {
            return Err(Problem::NikEmpty);
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(Problem::NikNotDigits);
        }
        if digits.len() != 16 {
            return Err(Problem::NikLength);
        }
        if !PROVINCES.contains(&&digits[0..2]) {
            return Err(Problem::NikProvince);
        }
        let number = |range: std::ops::Range<usize>| digits[range].parse::<u32>().unwrap_or(0);
        let (raw_day, month, yy) = (number(6..8), number(8..10), number(10..12));
        let female = raw_day > 40;
        let day = if female { raw_day - 40 } else { raw_day };
        let birth = [2000 + yy as i32, 1900 + yy as i32]
            .into_iter()
            .filter_map(|year| NaiveDate::from_ymd_opt(year, month, day))
            .find(|date| *date <= today)
            .ok_or(Problem::NikDate)?;
        if &digits[12..16] == "0000" {
            return Err(Problem::NikSerial);
        }
        Ok(Nik {
            digits,
            birth,
            female,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The birth date the NIK encodes.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    pub fn is_female(&self) -> bool {
        self.female
    }

    /// Whether a date of birth agrees with the NIK (day, month and the last
    /// two digits of the year; the century is not in the NIK).
    pub fn agrees_with(&self, date: NaiveDate) -> bool {
        date.day() == self.birth.day()
            && date.month() == self.birth.month()
            && date.year().rem_euclid(100) == self.birth.year().rem_euclid(100)
    }

    /// `3201********0003`: what staff and citizens see.
    pub fn masked(&self) -> String {
        mask_nik(&self.digits)
    }
}

/// Masks a stored 16-digit NIK, keeping the first and last four digits.
pub fn mask_nik(digits: &str) -> String {
    if digits.len() != 16 || !digits.is_ascii() {
        return "*".repeat(digits.chars().count());
    }
    format!("{}********{}", &digits[..4], &digits[12..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    #[test]
    fn accepts_a_man_and_strips_separators() {
        let nik = Nik::parse(" 3201.01-170890 0003 ", today()).unwrap();
        assert_eq!(nik.as_str(), "3201011708900003");
        assert_eq!(
            nik.birth_date(),
            NaiveDate::from_ymd_opt(1990, 8, 17).unwrap()
        );
        assert!(!nik.is_female());
        assert_eq!(nik.masked(), "3201********0003");
    }

    #[test]
    fn a_woman_adds_forty_to_the_day() {
        let nik = Nik::parse("3578015708950001", today()).unwrap();
        assert!(nik.is_female());
        assert_eq!(
            nik.birth_date(),
            NaiveDate::from_ymd_opt(1995, 8, 17).unwrap()
        );
        // Day 71 is 31 + 40; day 72 is not a day at all.
        assert!(Nik::parse("3578017101900001", today()).is_ok());
        assert_eq!(
            Nik::parse("3578017201900001", today()),
            Err(Problem::NikDate)
        );
    }

    #[test]
    fn year_is_the_century_that_is_not_in_the_future() {
        let young = Nik::parse("3201011708100003", today()).unwrap();
        assert_eq!(young.birth_date().year(), 2010);
        // 2026-12-01 would be in the future, so it is 1926.
        let old = Nik::parse("3201010112260003", today()).unwrap();
        assert_eq!(old.birth_date().year(), 1926);
    }

    #[test]
    fn each_rule_has_its_own_problem() {
        assert_eq!(Nik::parse("", today()), Err(Problem::NikEmpty));
        assert_eq!(
            Nik::parse("32010117089O0003", today()),
            Err(Problem::NikNotDigits)
        );
        assert_eq!(
            Nik::parse("320101170890003", today()),
            Err(Problem::NikLength)
        );
        assert_eq!(
            Nik::parse("99010117089000031", today()),
            Err(Problem::NikLength)
        );
        assert_eq!(
            Nik::parse("9901011708900003", today()),
            Err(Problem::NikProvince)
        );
        assert_eq!(
            Nik::parse("2001011708900003", today()),
            Err(Problem::NikProvince)
        );
        assert_eq!(
            Nik::parse("3201013102900003", today()),
            Err(Problem::NikDate)
        );
        assert_eq!(
            Nik::parse("3201011713900003", today()),
            Err(Problem::NikDate)
        );
        assert_eq!(
            Nik::parse("3201010008900003", today()),
            Err(Problem::NikDate)
        );
        assert_eq!(
            Nik::parse("3201011708900000", today()),
            Err(Problem::NikSerial)
        );
    }

    #[test]
    fn leap_days_follow_the_year() {
        assert!(Nik::parse("3201012902000003", today()).is_ok()); // 2000-02-29
        assert_eq!(
            Nik::parse("3201012902010003", today()),
            Err(Problem::NikDate)
        );
    }

    #[test]
    fn agreement_with_date_of_birth() {
        let nik = Nik::parse("3578015708950001", today()).unwrap();
        assert!(nik.agrees_with(NaiveDate::from_ymd_opt(1995, 8, 17).unwrap()));
        assert!(!nik.agrees_with(NaiveDate::from_ymd_opt(1995, 8, 18).unwrap()));
        assert!(!nik.agrees_with(NaiveDate::from_ymd_opt(1996, 8, 17).unwrap()));
    }
}
