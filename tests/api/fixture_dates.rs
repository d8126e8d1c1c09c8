//! No test, benchmark or rehearsal depends on the day it runs: fixtures
//! are dated relative to the portal's clock (`clock.rs`, which tests move),
//! never to a fixed calendar day that expiry or retention overtakes. This
//! check fails on a new calendar date (2000-2099) written into a source;
//! the few below are kept on purpose, each with its reason.

use std::path::Path;

/// (file, date as written, why it is safe on any day).
const ALLOWED: &[(&str, &str, &str)] = &[
    // Texts shown to staff: the example of the date format.
    (
        "src/i18n.rs",
        "2026-11-24",
        "an example of the format in a message",
    ),
    // Date parsing: "today" is passed in, so these never rot.
    (
        "src/domain/birth_date.rs",
        "2026-01-01",
        "parsed against a fixed today",
    ),
    (
        "src/domain/birth_date.rs",
        "2027-01-01",
        "parsed against a fixed today",
    ),
    (
        "src/domain/birth_date.rs",
        "2026, 11, 24",
        "the fixed today of the parser's tests",
    ),
    (
        "src/domain/nik.rs",
        "2026, 11, 24",
        "the fixed today of the parser's tests",
    ),
    (
        "src/domain/nik.rs",
        "2026-12-01",
        "a comment on a NIK's date",
    ),
    (
        "src/domain/nik.rs",
        "2000-02-29",
        "a comment on a NIK's date",
    ),
    (
        "src/domain/password.rs",
        "2026, 1, 1",
        "the fixed today of a NIK parsed",
    ),
    (
        "tests/api/fuzz.rs",
        "2026, 11, 25",
        "the fixed today of the parsers fuzzed",
    ),
    (
        "src/clock.rs",
        "2030, 1, 31",
        "the clock's own test sets it",
    ),
    (
        "src/clock.rs",
        "2030, 2, 1",
        "the clock's own test reads it",
    ),
    // Staff filters: shapes and orderings, not fixtures.
    ("tests/api/staff.rs", "2000-01-01", "a range before any row"),
    ("tests/api/staff.rs", "2000-01-02", "a range before any row"),
    (
        "tests/api/staff.rs",
        "2026-02-30",
        "a date that does not exist",
    ),
    (
        "tests/api/staff.rs",
        "2026-01-01",
        "the other end of an extreme range",
    ),
    (
        "tests/api/staff.rs",
        "2026-11-21",
        "a reversed range is refused on any day",
    ),
    (
        "tests/api/staff.rs",
        "2026-11-01",
        "a reversed range is refused on any day",
    ),
    (
        "tests/api/staff.rs",
        "2026-11-20",
        "a reversed range is refused on any day",
    ),
    (
        "tests/api/staff.rs",
        "2026-11-10",
        "a reversed range is refused on any day",
    ),
];

/// Calendar dates written in `text`: `20YY-MM-DD` and chrono's
/// `from_ymd_opt(20YY, M, D`, as written.
fn calendar_dates(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let mut found = Vec::new();
    for (at, _) in text.match_indices("20") {
        let iso = (at..at + 10).all(|i| matches!(i - at, 4 | 7) || digit(i))
            && bytes.get(at + 4) == Some(&b'-')
            && bytes.get(at + 7) == Some(&b'-');
        let bounded = (at == 0 || !digit(at - 1)) && !digit(at + 10);
        if iso && bounded {
            let month: u32 = text[at + 5..at + 7].parse().unwrap();
            let day: u32 = text[at + 8..at + 10].parse().unwrap();
            if (1..=12).contains(&month) && (1..=31).contains(&day) {
                found.push(text[at..at + 10].to_string());
            }
        }
    }
    for (at, needle) in text.match_indices("from_ymd_opt(") {
        let args: String = text[at + needle.len()..]
            .chars()
            .take_while(|c| *c != ')')
            .collect();
        let parts: Vec<&str> = args.split(',').map(str::trim).collect();
        if parts.len() == 3
            && parts[0].len() == 4
            && parts[0].starts_with("20")
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        {
            found.push(parts.join(", "));
        }
    }
    found
}

fn files(root: &Path, rel: &str, out: &mut Vec<String>) {
    let path = root.join(rel);
    if path.is_dir() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name == "node_modules" || name.starts_with('.') {
                continue;
            }
            files(root, &format!("{rel}/{name}"), out);
        }
    } else if path
        .extension()
        .is_some_and(|e| ["rs", "sh", "mjs", "json", "sql", "py"].contains(&e.to_str().unwrap()))
    {
        out.push(rel.to_string());
    }
}

#[test]
fn no_fixture_depends_on_a_calendar_day() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    for dir in ["src", "tests", "examples", "deploy", "tools", ".ci"] {
        files(root, dir, &mut sources);
    }
    assert!(sources.len() > 50, "{sources:?}");
    let mut wrong = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for file in &sources {
        if file.ends_with("fixture_dates.rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        for date in calendar_dates(&text) {
            match ALLOWED
                .iter()
                .find(|(f, d, _)| *f == file.as_str() && *d == date)
            {
                Some(entry) => {
                    used.insert(entry.1.to_string() + entry.0);
                }
                None => wrong.push(format!("{file}: {date}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "fixed calendar dates (date fixtures relative to the clock, or add one to ALLOWED with its reason):\n{}",
        wrong.join("\n")
    );
    let stale: Vec<_> = ALLOWED
        .iter()
        .filter(|(f, d, _)| !used.contains(&(d.to_string() + f)))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed dates no longer written: {stale:?}"
    );
}

/// The check finds what it is meant to find, and only that.
#[test]
fn the_date_check_finds_dates() {
    assert_eq!(
        calendar_dates(
            "VALUES ('u1', '2026-11-24 10:00:00'); NaiveDate::from_ymd_opt(2026, 11, d)"
        ),
        ["2026-11-24"]
    );
    assert_eq!(calendar_dates("from_ymd_opt(2031, 2, 3)"), ["2031, 2, 3"]);
    // Migration versions, birth dates, NIKs and phone numbers are no fixtures.
    assert!(
        calendar_dates("\"20261125000005\" 1995-08-17 3201011708900003 +6281234567890 2026-13-01")
            .is_empty()
    );
}
