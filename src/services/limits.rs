//! Every rate limit and counter, in one place: "already registered"
//! answers, password-reset requests, sign-ups and draft photos per client,
//! sign-in attempts (per client address and per account, with growing
//! waits), and the once-per-window mails. Each is a row per key and window
//! in `rate_counters`, checked and counted by one conditional update, so
//! parallel requests on any number of instances never pass a limit; keys
//! are keyed hashes (no address or IP in clear).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Ctx;
use super::failures::{Client, FailureLog};
use crate::db::DbConn;
use crate::error::AppError;

/// Deletes rate counters whose window ended more than a day ago.
pub fn purge(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    use crate::schema::rate_counters as rc;
    diesel::delete(rc::table.filter(rc::window_end.lt(now - chrono::Duration::days(1))))
        .execute(conn)
}

/// What a rate limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    Allowed,
    /// Refused until the window ends, this many seconds from now.
    Refused {
        retry_after_secs: i64,
    },
}

impl Allowance {
    pub fn is_allowed(self) -> bool {
        self == Allowance::Allowed
    }

    /// The first refusal of the two, or allowed.
    fn and(self, other: Allowance) -> Allowance {
        match self {
            Allowance::Allowed => other,
            refused => refused,
        }
    }
}

/// The client's address as a limit key (a keyed hash: no IP stored in clear).
pub fn client_key(log: &FailureLog, client: &Client) -> String {
    client
        .ip
        .map(|ip| log.keyed_hash("ip", &ip.to_string()))
        .unwrap_or_default()
}

/// One more event of `kind` (e.g. "taken", "forgot") for this client and
/// this address, within the hourly limits of both. Keys are keyed hashes:
/// no address or IP is stored in clear.
pub async fn allow_for_client_and_address(
    ctx: &Ctx<'_>,
    client: &Client,
    kind: &'static str,
    email: &str,
) -> Result<Allowance, AppError> {
    let per_ip = ctx.settings.rate_limit_per_ip_hour;
    let per_email = ctx.settings.rate_limit_per_email_hour;
    allow(
        ctx,
        vec![
            (format!("{kind}-ip:{}", client_key(ctx.log, client)), per_ip),
            (
                format!("{kind}-email:{}", ctx.log.keyed_hash("email", email)),
                per_email,
            ),
        ],
    )
    .await
}

/// Counts one event against each `(key, hourly limit)` in turn; the first
/// refusal stops (later keys are not counted).
pub async fn allow(ctx: &Ctx<'_>, limits: Vec<(String, i64)>) -> Result<Allowance, AppError> {
    allow_within(ctx, limits, chrono::Duration::hours(1)).await
}

/// `allow` with windows of `window` instead of an hour.
pub async fn allow_within(
    ctx: &Ctx<'_>,
    limits: Vec<(String, i64)>,
    window: chrono::Duration,
) -> Result<Allowance, AppError> {
    let clock = ctx.clock.clone();
    ctx.db(move |conn| -> Result<Allowance, AppError> {
        let now = clock.now();
        let mut decision = Allowance::Allowed;
        for (key, limit) in &limits {
            decision = decision.and(rate_allow(conn, key, now, window, *limit)?);
            if !decision.is_allowed() {
                break;
            }
        }
        Ok(decision)
    })
    .await
}

/// What the sign-in counters say about one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInGate {
    Open,
    /// Too soon after the last wrong passwords: the next attempt is allowed
    /// in this many seconds (the delay grows with each wrong password).
    Wait {
        retry_after_secs: i64,
    },
    /// Too many wrong passwords for the account (or attempts from the
    /// client address) in the window: paused until it ends.
    Paused {
        retry_after_secs: i64,
    },
}

impl SignInGate {
    /// Seconds until the next attempt may go ahead; `None` when it may now.
    pub fn retry_after(self) -> Option<i64> {
        match self {
            SignInGate::Open => None,
            SignInGate::Wait { retry_after_secs } | SignInGate::Paused { retry_after_secs } => {
                Some(retry_after_secs)
            }
        }
    }
}

/// Wrong passwords for one account that cost nothing; after them each
/// attempt must wait for the one before: 1 s, 2 s, 4 s, ... at most 60 s,
/// until the account's limit pauses sign-in for the rest of its window.
pub const FREE_SIGN_IN_ATTEMPTS: i32 = 3;

/// When the attempt after the `count`-th of a window may come: `None` for
/// at once. (Not `now`: a parallel attempt that read the clock a moment
/// earlier would find itself too soon and be told to wait.)
fn not_before_after(count: i32, now: NaiveDateTime) -> Option<NaiveDateTime> {
    let delay = sign_in_delay(count);
    (delay > chrono::Duration::zero()).then(|| now + delay)
}

/// The wait after the `count`-th attempt of a window.
pub fn sign_in_delay(count: i32) -> chrono::Duration {
    if count < FREE_SIGN_IN_ATTEMPTS {
        return chrono::Duration::zero();
    }
    let doublings = (count - FREE_SIGN_IN_ATTEMPTS).min(6) as u32;
    chrono::Duration::seconds((1i64 << doublings).min(60))
}

/// Sign-in attempts are counted *before* the password is checked (so
/// parallel guesses cannot all reach the hash), per client address (not
/// given back) and per account (given back when the password was right, so
/// only wrong ones add up). `scope` is "citizen" or "staff".
pub async fn reserve_sign_in(
    ctx: &Ctx<'_>,
    client: &Client,
    scope: &'static str,
    email: &str,
    per_account: i64,
    window: chrono::Duration,
) -> Result<SignInGate, AppError> {
    let ip_key = format!("signin-ip:{}", client_key(ctx.log, client));
    let account_key = sign_in_account_key(ctx.log, scope, email);
    let per_ip = ctx.settings.signin_per_ip_hour;
    let clock = ctx.clock.clone();
    ctx.db(move |conn| -> Result<SignInGate, AppError> {
        let now = clock.now();
        let by_ip = rate_allow(conn, &ip_key, now, chrono::Duration::hours(1), per_ip)?;
        if let Allowance::Refused { retry_after_secs } = by_ip {
            return Ok(SignInGate::Paused { retry_after_secs });
        }
        Ok(paced_allow(conn, &account_key, now, window, per_account)?)
    })
    .await
}

/// [`rate_allow`] with growing delays: besides the limit per window, each
/// attempt after the free ones must come [`sign_in_delay`] after the one
/// before. Read, then counted by a conditional update on the count read
/// (compare-and-set), so of parallel attempts exactly one passes per step.
pub fn paced_allow(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: chrono::Duration,
    limit: i64,
) -> QueryResult<SignInGate> {
    use crate::schema::rate_counters as rc;
    let limit = limit.clamp(0, i64::from(i32::MAX)) as i32;
    let paused = |end: NaiveDateTime| SignInGate::Paused {
        retry_after_secs: (end - now).num_seconds().max(1),
    };
    if limit == 0 {
        return Ok(paused(now + window));
    }
    for _ in 0..8 {
        let row: Option<(NaiveDateTime, i32, Option<NaiveDateTime>)> = rc::table
            .find(key)
            .select((rc::window_end, rc::count, rc::not_before))
            .first(conn)
            .optional()?;
        match row {
            None => {
                if first_event(conn, key, now + window, not_before_after(1, now))? {
                    return Ok(SignInGate::Open);
                }
            }
            Some((end, _, _)) if end <= now => {
                let restarted = crate::db::retry_busy(|| {
                    diesel::update(rc::table.find(key).filter(rc::window_end.eq(end)))
                        .set((
                            rc::count.eq(1),
                            rc::window_end.eq(now + window),
                            rc::not_before.eq(not_before_after(1, now)),
                        ))
                        .execute(conn)
                })?;
                if restarted == 1 {
                    return Ok(SignInGate::Open);
                }
            }
            Some((end, count, _)) if count >= limit => return Ok(paused(end)),
            Some((_, _, Some(not_before))) if not_before > now => {
                let wait = (not_before - now).num_milliseconds();
                return Ok(SignInGate::Wait {
                    retry_after_secs: ((wait + 999) / 1000).max(1),
                });
            }
            Some((end, count, _)) => {
                let counted = crate::db::retry_busy(|| {
                    diesel::update(
                        rc::table
                            .find(key)
                            .filter(rc::window_end.eq(end))
                            .filter(rc::count.eq(count)),
                    )
                    .set((
                        rc::count.eq(count + 1),
                        rc::not_before.eq(not_before_after(count + 1, now)),
                    ))
                    .execute(conn)
                })?;
                if counted == 1 {
                    return Ok(SignInGate::Open);
                }
            }
        }
    }
    // Eight rounds of races on one key: a moment's wait.
    Ok(SignInGate::Wait {
        retry_after_secs: 1,
    })
}

/// Gives back the account's attempt after a right password (or code), and
/// lifts the wait the wrong ones before it had set.
pub async fn refund_sign_in(
    ctx: &Ctx<'_>,
    scope: &'static str,
    email: &str,
) -> Result<(), AppError> {
    use crate::schema::rate_counters as rc;
    let key = sign_in_account_key(ctx.log, scope, email);
    ctx.db(move |conn| {
        crate::db::retry_busy(|| {
            diesel::update(rc::table.find(&key).filter(rc::count.gt(0)))
                .set((
                    rc::count.eq(rc::count - 1),
                    rc::not_before.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)
        })
    })
    .await
    .map(|_| ())
}

fn sign_in_account_key(log: &FailureLog, scope: &str, email: &str) -> String {
    let email = email.trim().to_lowercase();
    format!("signin-{scope}:{}", log.keyed_hash("email", &email))
}

/// Counts an event against a limit of `limit` per `window` (which starts at
/// a key's first event): checked and counted by one conditional update, so
/// parallel requests on any number of instances never get past the limit.
/// Nothing is counted when refused.
pub fn rate_allow(
    conn: &mut DbConn,
    key: &str,
    now: NaiveDateTime,
    window: chrono::Duration,
    limit: i64,
) -> QueryResult<Allowance> {
    use crate::schema::rate_counters as rc;
    let limit = limit.clamp(0, i64::from(i32::MAX)) as i32;
    for _ in 0..4 {
        // Within the window and below the limit: count it.
        let counted = crate::db::retry_busy(|| {
            diesel::update(
                rc::table
                    .find(key)
                    .filter(rc::window_end.gt(now))
                    .filter(rc::count.lt(limit)),
            )
            .set(rc::count.eq(rc::count + 1))
            .execute(conn)
        })?;
        if counted == 1 {
            return Ok(Allowance::Allowed);
        }
        // The window is over: a new one starts with this event.
        let restarted = crate::db::retry_busy(|| {
            diesel::update(rc::table.find(key).filter(rc::window_end.le(now)))
                .set((rc::count.eq(1), rc::window_end.eq(now + window)))
                .execute(conn)
        })?;
        if restarted == 1 {
            return Ok(if limit >= 1 {
                Allowance::Allowed
            } else {
                Allowance::Refused {
                    retry_after_secs: window.num_seconds(),
                }
            });
        }
        let row: Option<(NaiveDateTime, i32)> = rc::table
            .find(key)
            .select((rc::window_end, rc::count))
            .first(conn)
            .optional()?;
        match row {
            // At the limit within the window.
            Some((end, count)) if end > now && count >= limit => {
                return Ok(Allowance::Refused {
                    retry_after_secs: (end - now).num_seconds().max(1),
                });
            }
            // Made by a concurrent first event after our update looked, or
            // ended between our two updates: go round again and count.
            Some(_) => continue,
            None => {}
        }
        if first_event(conn, key, now + window, None)? {
            return Ok(if limit >= 1 {
                Allowance::Allowed
            } else {
                Allowance::Refused {
                    retry_after_secs: window.num_seconds(),
                }
            });
        }
    }
    // Four rounds of races on one key: count it as refused for a moment.
    Ok(Allowance::Refused {
        retry_after_secs: 1,
    })
}

/// Counts a key's first event (a new row, count 1). `false` when a
/// concurrent first event made the row first (a unique violation): the
/// caller then goes round again and counts against that row.
fn first_event(
    conn: &mut DbConn,
    key: &str,
    window_end: NaiveDateTime,
    not_before: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    use crate::schema::rate_counters as rc;
    let inserted = crate::db::retry_busy(|| {
        diesel::insert_into(rc::table)
            .values((
                rc::key.eq(key),
                rc::window_end.eq(window_end),
                rc::count.eq(1),
                rc::not_before.eq(not_before),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e),
    }
}
