//! The mail outbox's delivery. Mail is written to `mail_outbox` in the
//! transaction that made it (`mail.rs` composes it); each instance's worker
//! claims what is due under a lease, hands it to the provider (`mail.rs`,
//! HTTP or SMTP) and writes what became of it: sent, the next try after a
//! capped exponential backoff, or failed after the last try.

use std::time::Duration;

use crate::db::outbox::{self, Mail};
use crate::error::AppError;
use crate::mail::{Mailer, backoff};
use crate::services::Ctx;

/// Mails claimed at once by one instance's worker.
pub const BATCH: i64 = 20;

/// Why a mail was not sent to an address that bounced (staff read it).
pub const UNDELIVERABLE: &str =
    "not sent: mail to this address bounced for good before (undeliverable)";

/// Delivers every mail that is due, once (at most `BATCH`; a mail to an
/// undeliverable address is marked failed instead). Returns how many were
/// handled.
pub async fn deliver_due(ctx: &Ctx<'_>, mailer: &Mailer) -> Result<usize, AppError> {
    let lease = chrono::Duration::seconds(ctx.settings.mail_timeout_secs as i64 * 2 + 30);
    let clock = ctx.clock.clone();
    let keys = ctx.keys.clone();
    let claimed = ctx
        .db(move |conn| -> Result<Vec<Mail>, AppError> {
            let now = clock.now();
            let mut opened = Vec::new();
            for mail in outbox::claim_due(conn, now, now + lease, BATCH)? {
                // No more mail to an address that bounced for good or
                // reported spam, until the citizen corrects it.
                if crate::db::mail_events::undeliverable_index(conn, &mail.to_address)? {
                    tracing::warn!(mail = %mail.id, kind = %mail.kind, "mail not sent: its address bounced before");
                    outbox::mark_attempt_failed(conn, &mail.id, UNDELIVERABLE, None)?;
                    continue;
                }
                match mail.opened(conn, &keys) {
                    Ok(mail) => opened.push(mail),
                    // One mail that does not open must not stop the rest:
                    // it is tried again after its lease (and logged).
                    Err(error) => tracing::error!(%error, "a queued mail does not open"),
                }
            }
            Ok(opened)
        })
        .await?;
    let count = claimed.len();
    // The batch goes to the provider at once (each mail is one request),
    // then each outcome is written as it comes back.
    let deliveries = claimed.into_iter().map(|mail| async move {
        let result = mailer.deliver(&mail).await;
        record_delivery(ctx, mail, result).await
    });
    for outcome in futures_util::future::join_all(deliveries).await {
        outcome?;
    }
    Ok(count)
}

/// Writes what became of one delivery.
async fn record_delivery(
    ctx: &Ctx<'_>,
    mail: Mail,
    result: Result<(), String>,
) -> Result<(), AppError> {
    let settings = ctx.settings;
    let base = Duration::from_secs(settings.mail_retry_base_secs);
    let max = Duration::from_secs(settings.mail_retry_max_secs);
    let max_attempts = settings.mail_max_attempts;
    let id = mail.id;
    let attempts = mail.attempts as u32 + 1;
    let kind = mail.kind;
    let clock = ctx.clock.clone();
    ctx.db(move |conn| {
        let now = clock.now();
        match result {
            Ok(()) => {
                tracing::info!(mail = %id, kind = %kind, attempts, "mail sent");
                outbox::mark_sent(conn, &id, now)
            }
            Err(error) => {
                let retry_at = (attempts < max_attempts).then(|| {
                    now + chrono::Duration::from_std(backoff(attempts, base, max))
                        .unwrap_or_else(|_| chrono::Duration::seconds(300))
                });
                if retry_at.is_some() {
                    tracing::warn!(mail = %id, kind = %kind, attempts, %error, "mail not delivered; will try again");
                } else {
                    tracing::error!(mail = %id, kind = %kind, attempts, %error, "mail failed after its last try");
                }
                outbox::mark_attempt_failed(conn, &id, &error, retry_at)
            }
        }
    })
    .await
}
