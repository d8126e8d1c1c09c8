//! Delivery feedback: the mail provider posts events about the mails it
//! accepted (delivered, deferred, bounced, complained) to
//! `POST /hooks/mail-events`, signed with `EMETERAI_MAIL_WEBHOOK_SECRET`.
//! A hard bounce or a complaint marks the address undeliverable: the pages
//! say so and offer to correct it, and no more mail goes there.

use chrono::{DateTime, NaiveDateTime};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::Ctx;
use crate::db::mail_events::{self, Applied, Event};
use crate::error::AppError;

/// The header the signature comes in: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Emeterai-Signature";
/// Events taken from one post (a provider batches; more is refused).
pub const MAX_EVENTS: usize = 1000;

#[derive(Deserialize)]
struct Body {
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    reference: String,
    kind: String,
    #[serde(default)]
    permanent: bool,
    at: String,
    #[serde(default)]
    detail: Option<String>,
}

/// What a post to the hook came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Signed: each event's outcome, by kind (`delivered`, `bounced`, ...,
    /// `duplicate`, `unknown_mail`).
    Accepted(Vec<&'static str>),
    /// No secret configured, no signature, or a wrong one: nothing changed.
    Refused,
    /// Signed, but not the format (`Body`): nothing changed.
    Malformed(String),
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`, compared in constant time (`Mac::verify_slice`).
pub fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_text) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_text) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature a provider sends for `body` (for documentation and tests).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The provider's text, kept for staff, without the addresses it often
/// quotes ("550 5.1.1 <siti@example.com>: user unknown"): identity data is
/// stored only sealed, and this table is not. At most 500 characters.
fn without_addresses(detail: &str) -> String {
    detail
        .split_whitespace()
        .map(|word| {
            if word.contains('@') {
                "[address]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect()
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.naive_utc())
}

/// Checks the signature first (nothing is parsed before it holds), then
/// records each event once and applies it to its mail.
pub async fn receive(
    ctx: &Ctx<'_>,
    body: &[u8],
    signature: Option<&str>,
    now: NaiveDateTime,
) -> Result<Received, AppError> {
    let Some(secret) = ctx.settings.mail_webhook_secret.as_deref() else {
        return Ok(Received::Refused);
    };
    if !signature_valid(secret, body, signature) {
        return Ok(Received::Refused);
    }
    let parsed: Body = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Received::Malformed(e.to_string())),
    };
    if parsed.events.len() > MAX_EVENTS {
        return Ok(Received::Malformed(format!(
            "more than {MAX_EVENTS} events in one post"
        )));
    }
    let mut events = Vec::with_capacity(parsed.events.len());
    for raw in parsed.events {
        if !matches!(
            raw.kind.as_str(),
            "delivered" | "bounced" | "complained" | "deferred"
        ) {
            return Ok(Received::Malformed(format!(
                "event {}: unknown kind {:?}",
                raw.id, raw.kind
            )));
        }
        let Some(at) = parse_time(&raw.at) else {
            return Ok(Received::Malformed(format!(
                "event {}: `at` is not an RFC 3339 time",
                raw.id
            )));
        };
        if raw.id.is_empty() || raw.id.len() > 200 || raw.reference.len() > 200 {
            return Ok(Received::Malformed(
                "an event id or reference of 1 to 200 characters".into(),
            ));
        }
        events.push(Event {
            id: raw.id,
            reference: raw.reference,
            kind: raw.kind,
            permanent: raw.permanent,
            at,
            detail: raw.detail.map(|d| without_addresses(&d)),
        });
    }
    let outcomes = ctx
        .db(move |conn| -> Result<Vec<&'static str>, AppError> {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in &events {
                let applied = mail_events::apply(conn, event, now)?;
                if let Applied::Recorded(state @ (mail_events::BOUNCED | mail_events::COMPLAINED)) =
                    applied
                {
                    tracing::warn!(mail = %event.reference, state, "mail address undeliverable: no more mail goes there");
                }
                outcomes.push(match applied {
                    Applied::Recorded(state) => state,
                    Applied::Duplicate => "duplicate",
                    Applied::UnknownMail => "unknown_mail",
                });
            }
            Ok(outcomes)
        })
        .await?;
    Ok(Received::Accepted(outcomes))
}

/// Whether mail to `address` bounced for good (or was reported as spam).
pub async fn undeliverable(ctx: &Ctx<'_>, address: &str) -> Result<bool, AppError> {
    let (keys, address) = (ctx.keys.clone(), address.to_string());
    ctx.db(move |conn| mail_events::undeliverable(conn, &keys, &address))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_checked_over_the_exact_body() {
        let signature = sign("secret", b"{}");
        assert!(signature_valid("secret", b"{}", Some(&signature)));
        assert!(!signature_valid("secret", b"{} ", Some(&signature)));
        assert!(!signature_valid("other", b"{}", Some(&signature)));
        assert!(!signature_valid("secret", b"{}", None));
        assert!(!signature_valid(
            "secret",
            b"{}",
            Some(&signature.replace("sha256=", ""))
        ));
    }

    #[test]
    fn the_providers_text_keeps_no_address() {
        assert_eq!(
            without_addresses("550 5.1.1 <siti.aminah@example.co.id>: user unknown"),
            "550 5.1.1 [address] user unknown"
        );
        assert_eq!(without_addresses(&"x".repeat(900)).len(), 500);
    }
}
