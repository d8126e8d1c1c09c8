//! Delivery events from the mail provider, matched to outbox rows, and the
//! addresses mail cannot reach (kept by their blind index).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use crate::domain::sealed::KeyRing;
use crate::schema::{mail_events, mail_outbox, undeliverable_addresses};

pub const DELIVERED: &str = "delivered";
pub const DEFERRED: &str = "deferred";
pub const SOFT_BOUNCED: &str = "soft_bounced";
pub const BOUNCED: &str = "bounced";
pub const COMPLAINED: &str = "complained";

/// One event as the provider reported it (already checked for its kind).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub reference: String,
    /// `delivered`, `deferred`, `bounced` or `complained`.
    pub kind: String,
    pub permanent: bool,
    pub at: NaiveDateTime,
    pub detail: Option<String>,
}

/// What one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Recorded; the mail's delivery state is now this.
    Recorded(&'static str),
    /// Seen before (the same event id): nothing changed.
    Duplicate,
    /// No mail of ours has this reference: ignored.
    UnknownMail,
}

/// Records an event once (its id is the key) and applies it to its mail,
/// in one transaction: a hard bounce or a complaint marks the mail's
/// address undeliverable.
pub fn apply(conn: &mut DbConn, event: &Event, now: NaiveDateTime) -> QueryResult<Applied> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            let mail: Option<(String, Option<NaiveDateTime>)> = mail_outbox::table
                .find(&event.reference)
                .select((mail_outbox::to_address, mail_outbox::delivery_at))
                .first(conn)
                .optional()?;
            let Some((address, last_at)) = mail else {
                return Ok(Applied::UnknownMail);
            };
            let seen: i64 = mail_events::table
                .find(&event.id)
                .count()
                .get_result(conn)?;
            if seen > 0 {
                return Ok(Applied::Duplicate);
            }
            diesel::insert_into(mail_events::table)
                .values((
                    mail_events::id.eq(&event.id),
                    mail_events::mail_id.eq(&event.reference),
                    mail_events::kind.eq(&event.kind),
                    mail_events::permanent.eq(i32::from(event.permanent)),
                    mail_events::occurred_at.eq(event.at),
                    mail_events::received_at.eq(now),
                    mail_events::detail.eq(&event.detail),
                ))
                .execute(conn)?;
            let state = match (event.kind.as_str(), event.permanent) {
                ("delivered", _) => DELIVERED,
                ("deferred", _) => DEFERRED,
                ("bounced", false) => SOFT_BOUNCED,
                ("bounced", true) => BOUNCED,
                _ => COMPLAINED,
            };
            // Events may arrive out of order: the latest one is the state.
            if last_at.is_none_or(|at| at <= event.at) {
                diesel::update(mail_outbox::table.find(&event.reference))
                    .set((
                        mail_outbox::delivery.eq(state),
                        mail_outbox::delivery_at.eq(event.at),
                    ))
                    .execute(conn)?;
            }
            if matches!(state, BOUNCED | COMPLAINED) {
                let known: i64 = undeliverable_addresses::table
                    .find(&address)
                    .count()
                    .get_result(conn)?;
                if known == 0 {
                    diesel::insert_into(undeliverable_addresses::table)
                        .values((
                            undeliverable_addresses::address.eq(&address),
                            undeliverable_addresses::kind.eq(state),
                            undeliverable_addresses::mail_id.eq(&event.reference),
                            undeliverable_addresses::since.eq(event.at),
                        ))
                        .execute(conn)?;
                }
            }
            Ok(Applied::Recorded(state))
        })
        .or_else(|e| match e {
            // The same event posted twice at once: the other one recorded it.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Ok(Applied::Duplicate),
            e => Err(e),
        })
    })
}

/// Whether mail to `address` (in clear) bounced for good or was reported
/// as spam.
pub fn undeliverable(conn: &mut DbConn, ring: &KeyRing, address: &str) -> QueryResult<bool> {
    undeliverable_index(conn, &super::identity::email_index(ring, address))
}

/// The same, for an address as the outbox keeps it (its blind index).
pub fn undeliverable_index(conn: &mut DbConn, index: &str) -> QueryResult<bool> {
    let n: i64 = undeliverable_addresses::table
        .find(index)
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
