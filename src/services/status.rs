//! The public status page (`/status`): sign-up, mail delivery and sign-in,
//! each normal, slow or down, judged every few seconds from the portal's
//! own figures, and the incident notice staff post. The page and the
//! banner read the [`Board`] in memory, so a surge of visitors costs no
//! database work.
//!
//! The judgement (thresholds in the README, "Status page"):
//! - every part is down while the database has no primary that answers
//!   (readiness);
//! - mail is slow when the oldest mail waiting was queued over
//!   [`MAIL_SLOW_SECS`] ago, down over [`MAIL_DOWN_SECS`];
//! - sign-up (choosing the password) and sign-in are slow when the hashing
//!   queue turned anyone away in the last [`WINDOW_SECS`], or when
//!   [`ERRORS_SLOW`] or more answers in that window were server errors.

use std::collections::VecDeque;
use std::sync::{Mutex, RwLock};

use chrono::{Duration, NaiveDateTime};

pub use crate::db::status::Notice;
use crate::error::AppError;
use crate::services::Ctx;

/// The window over which rejections and server errors are counted.
pub const WINDOW_SECS: i64 = 60;
pub const MAIL_SLOW_SECS: i64 = 120;
pub const MAIL_DOWN_SECS: i64 = 900;
pub const ERRORS_SLOW: u64 = 5;
/// The longest notice text, per language.
pub const NOTICE_MAX_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Normal,
    Slow,
    Down,
}

impl Level {
    /// 0, 1, 2: the value of the `emeterai_status` gauge.
    pub fn value(self) -> i64 {
        match self {
            Level::Normal => 0,
            Level::Slow => 1,
            Level::Down => 2,
        }
    }

    /// The level in words, in the page's language.
    pub fn label(self, t: &crate::i18n::Text) -> &'static str {
        match self {
            Level::Normal => t.status_normal,
            Level::Slow => t.status_slow,
            Level::Down => t.status_down,
        }
    }

    /// What a citizen can do at this level.
    pub fn hint(self, t: &crate::i18n::Text) -> &'static str {
        match self {
            Level::Normal => t.status_hint_normal,
            Level::Slow => t.status_hint_slow,
            Level::Down => t.status_hint_down,
        }
    }

    pub fn css(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Slow => "slow",
            Level::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub level: Level,
    /// When it last changed (or when this instance started).
    pub since: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub signup: Part,
    pub mail: Part,
    pub signin: Part,
    pub checked_at: NaiveDateTime,
    pub ready: bool,
    /// Seconds the oldest waiting mail has waited (None: none waits, or it
    /// could not be read).
    pub oldest_mail_secs: Option<i64>,
    pub notice: Option<Notice>,
}

/// What was read at one moment. The counters are totals since the
/// instance started.
#[derive(Debug, Clone)]
pub struct Reading {
    pub now: NaiveDateTime,
    pub ready: bool,
    pub oldest_mail: Option<NaiveDateTime>,
    /// The notice on, or `Err` when it could not be read (the last one
    /// known stays).
    pub notice: Result<Option<Notice>, ()>,
    pub signin_rejected: u64,
    pub new_password_rejected: u64,
    pub server_errors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Counts {
    at: NaiveDateTime,
    signin_rejected: u64,
    new_password_rejected: u64,
    server_errors: u64,
}

/// The status as last judged, in memory.
pub struct Board {
    snapshot: RwLock<Snapshot>,
    history: Mutex<VecDeque<Counts>>,
}

impl Board {
    pub fn new(now: NaiveDateTime) -> Board {
        let part = Part {
            level: Level::Normal,
            since: now,
        };
        Board {
            snapshot: RwLock::new(Snapshot {
                signup: part,
                mail: part,
                signin: part,
                checked_at: now,
                ready: true,
                oldest_mail_secs: None,
                notice: None,
            }),
            history: Mutex::new(VecDeque::new()),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The notice on now, as this instance last read it.
    pub fn notice(&self) -> Option<Notice> {
        self.snapshot.read().ok().and_then(|s| s.notice.clone())
    }

    /// Shows a notice (or none) at once on this instance, without waiting
    /// for the next reading: staff see their change on the next page.
    pub fn set_notice(&self, notice: Option<Notice>) {
        if let Ok(mut s) = self.snapshot.write() {
            s.notice = notice;
        }
    }

    /// Judges a reading and keeps the result.
    pub fn update(&self, reading: Reading) -> Snapshot {
        let now = reading.now;
        let counts = Counts {
            at: now,
            signin_rejected: reading.signin_rejected,
            new_password_rejected: reading.new_password_rejected,
            server_errors: reading.server_errors,
        };
        // The counts of the window: now minus the oldest sample in it.
        let oldest = {
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            history.push_back(counts);
            while history
                .front()
                .is_some_and(|c| now - c.at > Duration::seconds(WINDOW_SECS))
            {
                history.pop_front();
            }
            *history.front().unwrap_or(&counts)
        };
        let signin_rejected = counts
            .signin_rejected
            .saturating_sub(oldest.signin_rejected);
        let new_rejected = counts
            .new_password_rejected
            .saturating_sub(oldest.new_password_rejected);
        let errors = counts.server_errors.saturating_sub(oldest.server_errors);
        let oldest_mail_secs = reading
            .oldest_mail
            .map(|at| (now - at).num_seconds().max(0));

        let busy = |rejected: u64| {
            if !reading.ready {
                Level::Down
            } else if rejected > 0 || errors >= ERRORS_SLOW {
                Level::Slow
            } else {
                Level::Normal
            }
        };
        let mail = if !reading.ready || oldest_mail_secs.is_some_and(|s| s >= MAIL_DOWN_SECS) {
            Level::Down
        } else if oldest_mail_secs.is_some_and(|s| s >= MAIL_SLOW_SECS) {
            Level::Slow
        } else {
            Level::Normal
        };

        let mut s = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        let moved = |part: Part, level: Level| Part {
            level,
            since: if part.level == level { part.since } else { now },
        };
        s.signup = moved(s.signup, busy(new_rejected));
        s.signin = moved(s.signin, busy(signin_rejected));
        s.mail = moved(s.mail, mail);
        s.checked_at = now;
        s.ready = reading.ready;
        s.oldest_mail_secs = oldest_mail_secs;
        if let Ok(notice) = reading.notice {
            s.notice = notice;
        }
        s.clone()
    }
}

/// Reads what the judgement needs from the database: whether a primary
/// answers, the oldest waiting mail and the notice on. A database that
/// does not answer is "not ready", never an error.
pub async fn read(ctx: &Ctx<'_>) -> (bool, Option<NaiveDateTime>, Result<Option<Notice>, ()>) {
    let ready = ctx.ready().await.is_ok();
    if !ready {
        return (false, None, Err(()));
    }
    let found = ctx
        .db(|conn| -> Result<_, AppError> {
            let oldest = crate::db::status::oldest_pending_mail(conn)?;
            let notice = crate::db::status::current(conn)?;
            Ok((oldest, notice))
        })
        .await;
    match found {
        Ok((oldest, notice)) => (true, oldest, Ok(notice)),
        Err(_) => (false, None, Err(())),
    }
}

/// Why a notice cannot be posted.
#[derive(Debug, PartialEq, Eq)]
pub enum NoticeProblem {
    /// A text is empty or longer than [`NOTICE_MAX_CHARS`].
    Text,
}

/// Posts an incident notice (both languages), ending the one that was on;
/// audited. Returns it, to show at once.
pub async fn post_notice(
    ctx: &Ctx<'_>,
    text_id: &str,
    text_en: &str,
    staff_email: &str,
    now: NaiveDateTime,
) -> Result<Result<Notice, NoticeProblem>, AppError> {
    let (text_id, text_en) = (text_id.trim().to_string(), text_en.trim().to_string());
    let fits = |t: &str| !t.is_empty() && t.chars().count() <= NOTICE_MAX_CHARS;
    if !fits(&text_id) || !fits(&text_en) {
        return Ok(Err(NoticeProblem::Text));
    }
    let by = staff_email.to_string();
    let notice = ctx
        .db(move |conn| -> Result<_, AppError> {
            crate::db::status::post(conn, &text_id, &text_en, &by, now)?;
            Ok(crate::db::status::current(conn)?)
        })
        .await?;
    notice
        .map(Ok)
        .ok_or_else(|| AppError::internal("the notice just posted is not there"))
}

/// Ends the notice on (audited); false when none was.
pub async fn end_notice(
    ctx: &Ctx<'_>,
    staff_email: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let by = staff_email.to_string();
    ctx.db(move |conn| crate::db::status::end(conn, &by, now))
        .await
}

/// The latest notices for the console.
pub async fn recent_notices(ctx: &Ctx<'_>) -> Result<Vec<Notice>, AppError> {
    ctx.db(|conn| crate::db::status::recent(conn, 20)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_000_000_000 + secs, 0)
            .unwrap()
            .naive_utc()
    }

    fn reading(secs: i64) -> Reading {
        Reading {
            now: at(secs),
            ready: true,
            oldest_mail: None,
            notice: Ok(None),
            signin_rejected: 0,
            new_password_rejected: 0,
            server_errors: 0,
        }
    }

    #[test]
    fn each_part_is_judged_by_its_own_figures_and_remembers_when_it_changed() {
        let board = Board::new(at(0));
        let s = board.update(reading(5));
        assert_eq!(s.signup.level, Level::Normal);
        assert_eq!(s.signup.since, at(0));

        // A sign-in turned away by the hashing queue: sign-in slow, sign-up not.
        let s = board.update(Reading {
            signin_rejected: 1,
            ..reading(10)
        });
        assert_eq!(
            s.signin,
            Part {
                level: Level::Slow,
                since: at(10)
            }
        );
        assert_eq!(s.signup.level, Level::Normal);

        // The rejection leaves the window after a minute.
        let s = board.update(Reading {
            signin_rejected: 1,
            ..reading(10 + WINDOW_SECS + 1)
        });
        assert_eq!(s.signin.level, Level::Normal);
        assert_eq!(s.signin.since, at(10 + WINDOW_SECS + 1));

        // Mail waiting three minutes is slow, twenty minutes is down.
        let s = board.update(Reading {
            oldest_mail: Some(at(200 - 180)),
            signin_rejected: 1,
            ..reading(200)
        });
        assert_eq!(s.mail.level, Level::Slow);
        assert_eq!(s.oldest_mail_secs, Some(180));
        let s = board.update(Reading {
            oldest_mail: Some(at(0)),
            signin_rejected: 1,
            ..reading(1200)
        });
        assert_eq!(s.mail.level, Level::Down);

        // No primary: everything is down; a notice that cannot be read stays.
        board.set_notice(Some(Notice {
            id: "n".into(),
            text_id: "Gangguan".into(),
            text_en: "Incident".into(),
            started_at: at(1200),
            started_by: "staff@example.com".into(),
            ended_at: None,
            ended_by: None,
        }));
        let s = board.update(Reading {
            ready: false,
            notice: Err(()),
            signin_rejected: 1,
            ..reading(1205)
        });
        assert_eq!(
            [s.signup.level, s.mail.level, s.signin.level],
            [Level::Down; 3]
        );
        assert_eq!(
            s.notice.as_ref().map(|n| n.text_en.as_str()),
            Some("Incident")
        );
    }

    #[test]
    fn server_errors_slow_both_parts_from_the_threshold() {
        let board = Board::new(at(0));
        board.update(reading(0));
        let s = board.update(Reading {
            server_errors: ERRORS_SLOW - 1,
            ..reading(5)
        });
        assert_eq!(s.signup.level, Level::Normal);
        let s = board.update(Reading {
            server_errors: ERRORS_SLOW,
            ..reading(10)
        });
        assert_eq!([s.signup.level, s.signin.level], [Level::Slow; 2]);
    }
}
