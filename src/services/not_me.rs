//! "This was not me", from the second link of a mail: for a pending
//! registration, cancel it (its data, photo and links gone; its address
//! and NIK free at once); for a verified account, the account-security
//! path (every session ended, a password-reset link mailed). Either way a
//! failure-log row of its own tells staff. Opening the link changes
//! nothing; the page's button does.

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use super::failures::{self, Client, Failure, reason};
use crate::db::not_me::{self, NotMeMail, Target};
use crate::error::AppError;
use crate::i18n::Lang;

/// What a "not me" link leads to, before the button is pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// A registration waits under this (masked) address.
    Registration { masked_email: String },
    /// A verified account has this (masked) address.
    Account { masked_email: String },
    /// Pressed already.
    Used,
    /// Older than `EMETERAI_NOT_ME_TTL_DAYS`.
    Expired,
    /// Nothing is left under it (cancelled or expired and purged).
    Gone,
    /// Not a token of ours (cut off, mangled, made up).
    Unknown,
}

/// What pressing the button did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The registration and everything of it is deleted.
    Cancelled {
        reference: String,
    },
    /// Every session ended; a reset link is on its way to the account.
    Secured {
        reference: String,
    },
    Used,
    Expired,
    Gone,
    Unknown,
}

async fn mail_of(
    ctx: &Ctx<'_>,
    token: &str,
    now: NaiveDateTime,
) -> Result<Result<(NotMeMail, Target), Look>, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(Err(Look::Unknown));
    };
    let keys = ctx.keys.clone();
    let ttl = Duration::days(i64::from(ctx.settings.not_me_ttl_days));
    ctx.db(move |conn| -> Result<_, AppError> {
        let mut first = true;
        loop {
            let Some(mail) = not_me::find(conn, &hash)? else {
                return Ok(Err(Look::Unknown));
            };
            if mail.used_at.is_some() {
                return Ok(Err(Look::Used));
            }
            if mail.created_at + ttl < now {
                return Ok(Err(Look::Expired));
            }
            match not_me::target(conn, &keys, &mail) {
                Ok(target) => return Ok(Ok((mail, target))),
                // Another press (a second tab) cancelled the registration
                // between our reading its row and its data key: read
                // again, and the link is used.
                Err(e) if first && crate::db::identity::key_gone(&e) => first = false,
                Err(e) => return Err(e.into()),
            }
        }
    })
    .await
}

/// What the link `token` is about (GET and HEAD: changes nothing).
pub async fn look(ctx: &Ctx<'_>, token: &str, now: NaiveDateTime) -> Result<Look, AppError> {
    Ok(match mail_of(ctx, token, now).await? {
        Err(look) => look,
        Ok((_, Target::Registration(r))) => Look::Registration {
            masked_email: crate::domain::email_mask(&r.email),
        },
        Ok((_, Target::Account(a))) => Look::Account {
            masked_email: crate::domain::email_mask(&a.email),
        },
        Ok((_, Target::Gone)) => Look::Gone,
    })
}

/// The button: cancels the registration, or secures the account.
pub async fn confirm(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    lang: Lang,
    now: NaiveDateTime,
) -> Result<Done, AppError> {
    let (mail, target) = match mail_of(ctx, token, now).await? {
        Ok(found) => found,
        Err(Look::Used) => return Ok(Done::Used),
        Err(Look::Expired) => return Ok(Done::Expired),
        Err(Look::Gone) => return Ok(Done::Gone),
        Err(_) => return Ok(Done::Unknown),
    };
    match target {
        Target::Registration(registration) => {
            let mail_id = mail.id.clone();
            let cancelled = ctx
                .db({
                    let registration = registration.clone();
                    move |conn| not_me::cancel_registration(conn, &mail_id, &registration, now)
                })
                .await?;
            if !cancelled {
                return Ok(Done::Used);
            }
            let failure = Failure::new(reason::NOT_ME)
                .email(&registration.email)
                .nik(&registration.nik);
            let reference = failures::record(ctx, client, "NTM", failure).await;
            tracing::warn!(reference = %reference, "registration cancelled by the address's owner: not me");
            Ok(Done::Cancelled { reference })
        }
        Target::Account(account) => {
            let (mail_id, account_id) = (mail.id.clone(), account.id.clone());
            let secured = ctx
                .db(move |conn| not_me::secure_account(conn, &mail_id, &account_id, now))
                .await?;
            if !secured {
                return Ok(Done::Used);
            }
            let account_lang = Lang::from_code(&account.lang).unwrap_or(lang);
            super::accounts::queue_account_link(ctx, *account.clone(), account_lang, now, false)
                .await?;
            let failure = Failure::new(reason::NOT_ME_ACCOUNT)
                .email(&account.email)
                .nik(&account.nik);
            let reference = failures::record(ctx, client, "NTM", failure).await;
            tracing::warn!(reference = %reference, "account secured by its owner: not me (sessions ended, reset link mailed)");
            Ok(Done::Secured { reference })
        }
        Target::Gone => Ok(Done::Gone),
    }
}
