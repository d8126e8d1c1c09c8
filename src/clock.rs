//! The portal's one clock. Everything that reads the time (expiry,
//! retention, rate-limit windows, pacing, the outbox lease, the failure
//! log's timestamps, form ages) reads it here, so tests move time instead
//! of waiting for it or writing fixtures with dates that rot.
//!
//! It is the system time plus an offset that only tests change
//! ([`Clock::advance`], [`Clock::set`]); copies share the offset, so moving
//! the clock of a running application moves it for every request and for
//! its worker at once. Time keeps flowing after a move: timeouts, pacing
//! and the order of events behave as in production.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};

/// Indonesia's western time zone (WIB), UTC+7: the day staff and citizens
/// count in.
pub const WIB_HOURS: i64 = 7;

/// A time as people in Indonesia's western zone read it: `YYYY-MM-DD HH:MM:SS WIB`.
pub fn wib_text(at: NaiveDateTime) -> String {
    (at + Duration::hours(WIB_HOURS))
        .format("%Y-%m-%d %H:%M:%S WIB")
        .to_string()
}

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Nanoseconds added to the system time (i64 reaches 292 years).
    offset_ns: Arc<AtomicI64>,
}

impl Clock {
    /// The system time, unmoved.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now, in UTC, as the database stores times.
    pub fn now(&self) -> NaiveDateTime {
        Utc::now().naive_utc() + Duration::nanoseconds(self.offset_ns.load(Ordering::Relaxed))
    }

    /// Now as Unix seconds (for times kept in the session cookie).
    pub fn timestamp(&self) -> i64 {
        self.now().and_utc().timestamp()
    }

    /// Today in WIB (UTC+7), for birth-date checks and the staff's days.
    pub fn today_in_indonesia(&self) -> NaiveDate {
        (self.now() + Duration::hours(WIB_HOURS)).date()
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let by = by.num_nanoseconds().expect("a move within 292 years");
        self.offset_ns.fetch_add(by, Ordering::Relaxed);
    }

    /// Moves the clock so that it reads `at` now (and flows on from there).
    pub fn set(&self, at: NaiveDateTime) {
        let offset = (at - Utc::now().naive_utc())
            .num_nanoseconds()
            .expect("a time within 292 years of now");
        self.offset_ns.store(offset, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_copy_moves_every_copy() {
        let clock = Clock::system();
        let copy = clock.clone();
        let before = clock.now();
        copy.advance(Duration::days(10));
        let moved = clock.now() - before;
        assert!(moved >= Duration::days(10), "{moved}");
        assert!(moved < Duration::days(10) + Duration::seconds(5), "{moved}");
    }

    #[test]
    fn set_reads_the_time_set_and_flows_on() {
        let clock = Clock::system();
        let at = NaiveDate::from_ymd_opt(2030, 1, 31)
            .unwrap()
            .and_hms_opt(17, 30, 0)
            .unwrap();
        clock.set(at);
        let now = clock.now();
        assert!(now >= at && now - at < Duration::seconds(5), "{now}");
        // 17:30 UTC is 00:30 the next day in WIB.
        assert_eq!(
            clock.today_in_indonesia(),
            NaiveDate::from_ymd_opt(2030, 2, 1).unwrap()
        );
    }
}
