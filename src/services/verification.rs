//! The mailed link. Opening it changes nothing but the time it was opened
//! (mail scanners that open every link verify nothing); choosing the
//! password through it makes the verified account. One more link can be
//! sent while a registration waits (earlier ones keep working).

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use crate::db::registrations::{self, CompleteOutcome};
use crate::domain::{Email, Password, Problem};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::services::failures::{self, Client, Failure, reason};

pub use crate::db::registrations::{LinkState, Registration, ResendOutcome};

/// The mail with a new link for `registration`, rendered inside its
/// transaction (`None`, logged, when it cannot be: the link is not sent).
fn link_mail(
    settings: &crate::config::Settings,
    lang: Lang,
    registration: &Registration,
    token: &str,
    now: NaiveDateTime,
) -> Option<crate::db::outbox::NewMail> {
    crate::mail::verification_mail(
        settings,
        lang,
        &registration.id,
        &registration.email,
        &registration.full_name,
        token,
        now,
    )
    .inspect_err(|e| tracing::error!(error = %e, "cannot render the verification mail"))
    .ok()
}

/// Sends one more verification link to a waiting registration, unless one
/// went out within the cooldown (one link per cooldown however many
/// requests arrive at once). Earlier links keep working.
pub async fn resend(
    ctx: &Ctx<'_>,
    email: &Email,
    lang: Lang,
    now: NaiveDateTime,
) -> Result<ResendOutcome, AppError> {
    let address = email.as_str().to_string();
    let cooldown = Duration::seconds(i64::from(ctx.settings.resend_cooldown_secs));
    let ttl = Duration::hours(i64::from(ctx.settings.verify_token_ttl_hours));
    let settings = ctx.settings.clone();
    let keys = ctx.keys.clone();
    let result = ctx
        .db(move |conn| {
            let (token, token_hash) = crate::domain::link_token::new_link_token();
            registrations::resend(
                conn,
                &keys,
                &address,
                &token_hash,
                registrations::LinkTimes { ttl, cooldown },
                now,
                |registration| link_mail(&settings, lang, registration, &token, now),
            )
        })
        .await?;
    match result {
        ResendOutcome::Sent => {
            tracing::info!("verification link sent again");
            ctx.mail_queued();
        }
        ResendOutcome::Cooldown => tracing::info!("verification resend refused: cooldown"),
        ResendOutcome::NothingWaiting => {}
    }
    Ok(result)
}

/// What the link `token` leads to. With `record_open` (a GET, not a HEAD)
/// the time it was opened is noted for the staff timeline.
pub async fn open_link(
    ctx: &Ctx<'_>,
    token: &str,
    record_open: bool,
    now: NaiveDateTime,
) -> Result<LinkState, AppError> {
    match crate::domain::link_token::link_token_hash(token) {
        Some(hash) => {
            let keys = ctx.keys.clone();
            ctx.db(move |conn| registrations::open_link(conn, &keys, &hash, now, record_open))
                .await
        }
        None => Ok(LinkState::Unknown),
    }
}

/// Logs a link that cannot be used to choose a password and that support
/// may hear of (expired, unknown, its NIK taken meanwhile); the reference
/// code for the page.
pub async fn note_link_problem(ctx: &Ctx<'_>, client: &Client, link: &LinkState) -> Option<String> {
    let failure = match link {
        LinkState::Expired { email } => Failure::new(reason::LINK_EXPIRED).email(email),
        LinkState::Unknown => Failure::new(reason::LINK_UNKNOWN),
        LinkState::NikTaken { registration } => Failure::new(reason::NIK_TAKEN_AT_LINK)
            .email(&registration.email)
            .nik(&registration.nik),
        LinkState::Done { .. } | LinkState::Ready { .. } => return None,
    };
    Some(failures::record(ctx, client, "VER", failure).await)
}

/// The password as typed on the link's page, twice.
pub struct ChosenPassword<'f> {
    pub password: &'f str,
    pub confirm: &'f str,
}

/// What choosing the password led to.
#[derive(Debug)]
pub enum Choice {
    /// The link cannot be used (any more): what it leads to instead.
    Link(Box<LinkState>),
    /// The form comes back: the page was stale, or the password has a
    /// problem (`None` for a stale page of the old form, which has no
    /// password field).
    Again {
        registration: Box<Registration>,
        problem: Option<Problem>,
    },
    /// The account exists now, verified; sign the citizen in with it.
    Completed { account_id: String, epoch: i64 },
}

/// Chooses the password through the link `token`: checks the link and the
/// password first (no hashing before both are right, nor for a stale page
/// (`fresh` false), which is logged), hashes on the pool (`AppError::Busy`,
/// back to `retry`, when it is full), then makes the account.
pub async fn choose_password(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    chosen: ChosenPassword<'_>,
    fresh: bool,
    retry: &str,
    now: NaiveDateTime,
) -> Result<Choice, AppError> {
    let Some(token_hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(Choice::Link(Box::new(LinkState::Unknown)));
    };
    let lookup = token_hash.clone();
    let keys = ctx.keys.clone();
    let link = ctx
        .db(move |conn| registrations::open_link(conn, &keys, &lookup, now, false))
        .await?;
    let registration = match link {
        LinkState::Ready { registration } => registration,
        other => return Ok(Choice::Link(Box::new(other))),
    };
    let password_hash = if registration.has_legacy_password() && fresh {
        // The old form's registrations already chose their password.
        None
    } else {
        let checked = Password::parse_for_owner(
            chosen.password,
            chosen.confirm,
            &registration.email,
            &registration.nik,
            &registration.full_name,
            ctx.common_passwords,
            (now + chrono::Duration::hours(crate::clock::WIB_HOURS)).date(),
        );
        match checked {
            Ok(password) if fresh => {
                Some(crate::services::passwords::hash(&ctx.hashing, password, retry).await?)
            }
            checked => {
                if !fresh {
                    // Typing mistakes are not failures worth a log row; a
                    // stale page is (the citizen met it, and may call).
                    let failure = Failure::new(reason::STALE_FORM).email(&registration.email);
                    failures::record(ctx, client, "STL", failure).await;
                }
                let problem = if registration.has_legacy_password() {
                    None
                } else {
                    checked.err()
                };
                return Ok(Choice::Again {
                    registration: Box::new(registration),
                    problem,
                });
            }
        }
    };
    ctx.check_storage()?;
    let keys = ctx.keys.clone();
    let outcome = ctx
        .db(move |conn| {
            registrations::complete(conn, &keys, &token_hash, password_hash.as_deref(), now)
        })
        .await?;
    Ok(match outcome {
        CompleteOutcome::Completed { account_id, epoch } => {
            tracing::info!("password chosen; email verified; account created");
            Choice::Completed { account_id, epoch }
        }
        CompleteOutcome::NotReady(other) => Choice::Link(other),
    })
}

pub use crate::db::registrations::CorrectOutcome;

/// Moves the registration waiting under `old` (this browser's own, from
/// its session) to the address `new`, after mail to `old` could not be
/// delivered: data and photo kept, a new link mailed to `new`. Limited per
/// client and per registration (`AppError::RateLimited`, logged), counted
/// before anything is sealed or mailed.
pub async fn correct_email(
    ctx: &Ctx<'_>,
    client: &Client,
    old: &Email,
    new: &Email,
    lang: Lang,
    now: NaiveDateTime,
) -> Result<CorrectOutcome, AppError> {
    use crate::services::limits::{self, Allowance};
    if let Allowance::Refused { retry_after_secs } =
        limits::allow_for_client_and_address(ctx, client, "correct", old.as_str()).await?
    {
        let failure = Failure::new(reason::RATE_LIMITED).email(old.as_str());
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let ttl = Duration::hours(i64::from(ctx.settings.verify_token_ttl_hours));
    let (settings, keys) = (ctx.settings.clone(), ctx.keys.clone());
    let (old_address, new_address) = (old.as_str().to_string(), new.as_str().to_string());
    let outcome = ctx
        .db(move |conn| {
            let (token, token_hash) = crate::domain::link_token::new_link_token();
            registrations::change_email(
                conn,
                &keys,
                &old_address,
                &new_address,
                &token_hash,
                ttl,
                now,
                |registration| link_mail(&settings, lang, registration, &token, now),
            )
        })
        .await?;
    if outcome == CorrectOutcome::Corrected {
        tracing::info!("registration moved to a corrected address after a bounce; link sent");
        ctx.mail_queued();
    }
    Ok(outcome)
}
