//! "Which address did I use?": where a NIK is already registered, the
//! portal mails a reminder to the address that holds it (sign-in and
//! password-reset links, and "not me"), instead of leaving the citizen to
//! try every address they own or to call the Contact Center.

use chrono::NaiveDateTime;

use super::Ctx;
use super::failures::{self, Client, Failure, reason};
use super::limits::{self, Allowance};
use crate::domain::Nik;
use crate::error::AppError;
use crate::i18n::Lang;

/// The masked address of the account that holds `nik`, for the page that
/// offers the reminder; `None` when no account holds it.
pub async fn holder(ctx: &Ctx<'_>, nik: &str) -> Result<Option<String>, AppError> {
    let (keys, nik) = (ctx.keys.clone(), nik.to_string());
    let account = ctx
        .db(move |conn| crate::db::accounts::find_by_nik(conn, &keys, &nik))
        .await?;
    Ok(account.map(|a| crate::domain::email_mask(&a.email)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reminded {
    /// Mailed to this (masked) address.
    Sent { masked_email: String },
    /// No account holds the NIK (any more): it can be registered.
    NoAccount,
}

/// Mails the reminder to the address holding `nik`. Limited per client,
/// per NIK and per address (counted in the database before any mail;
/// `AppError::RateLimited` past a limit, logged).
pub async fn remind(
    ctx: &Ctx<'_>,
    client: &Client,
    nik: &Nik,
    lang: Lang,
    now: NaiveDateTime,
) -> Result<Reminded, AppError> {
    let (keys, digits) = (ctx.keys.clone(), nik.as_str().to_string());
    let account = ctx
        .db(move |conn| crate::db::accounts::find_by_nik(conn, &keys, &digits))
        .await?;
    let settings = ctx.settings;
    let mut counted = vec![
        (
            format!("remind-ip:{}", limits::client_key(ctx.log, client)),
            settings.rate_limit_per_ip_hour,
        ),
        (
            format!("remind-nik:{}", ctx.log.nik_hash(nik.as_str())),
            settings.remind_per_hour,
        ),
    ];
    if let Some(account) = &account {
        counted.push((
            format!(
                "remind-email:{}",
                ctx.log.keyed_hash("email", &account.email)
            ),
            settings.remind_per_hour,
        ));
    }
    if let Allowance::Refused { retry_after_secs } = limits::allow(ctx, counted).await? {
        let failure = Failure::new(reason::RATE_LIMITED).nik(nik.as_str());
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let Some(account) = account else {
        return Ok(Reminded::NoAccount);
    };
    let masked_email = crate::domain::email_mask(&account.email);
    let account_lang = Lang::from_code(&account.lang).unwrap_or(lang);
    super::accounts::queue_account_link(ctx, account, account_lang, now, true).await?;
    tracing::info!("address reminder queued for a registered NIK");
    Ok(Reminded::Sent { masked_email })
}
