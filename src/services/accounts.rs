//! A citizen's account once made: signing in (limits counted before any
//! hashing), the server-side session records, signing out, and the
//! password reset by mailed link.

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use crate::db::accounts::{self, NewToken, PURPOSE_RESET};
use crate::db::{registrations, sessions};
use crate::domain::{Email, Password, Problem};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::services::failures::{self, Client, Failure, reason};
use crate::services::limits::{self, Allowance, SignInGate};

pub use crate::db::accounts::Account;

/// Wrong passwords on one address in an hour that are neither logged nor
/// given a reference code.
pub const FREE_SIGN_IN_TRIES: i64 = 2;

/// The limits' scope for citizens (staff have their own).
const SCOPE: &str = "citizen";

/// What a sign-in attempt led to.
#[derive(Debug)]
pub enum SignIn {
    /// The password is right: start a session for this account. `kept`:
    /// the account was waiting for its deletion, which signing in cancelled.
    SignedIn {
        account_id: String,
        epoch: i64,
        kept: bool,
    },
    /// Wrong passwords in a row: the next attempt counts after a wait.
    Wait { retry_after_secs: i64 },
    /// The password is right for a registration made with the old form,
    /// still waiting for its link: it must be verified first.
    Unverified { email: String },
    /// Wrong address or password; a reference code once the citizen seems
    /// stuck (from the third wrong try on an address in an hour).
    Wrong { reference: Option<String> },
    /// The password is right, but the account is suspended: its NIK was
    /// released to its owner by this case (`services/cases.rs`).
    Suspended { case: String },
}

/// Checks a sign-in. Counted before any hashing, per client and per
/// address, so parallel guesses meet the limit too; past the per-account
/// limit the attempt is refused (`AppError::RateLimited`, logged) and the
/// owner is mailed once per pause.
pub async fn sign_in(
    ctx: &Ctx<'_>,
    client: &Client,
    typed_email: &str,
    password: String,
) -> Result<SignIn, AppError> {
    let window = Duration::minutes(ctx.settings.signin_lock_minutes);
    match limits::reserve_sign_in(
        ctx,
        client,
        SCOPE,
        typed_email,
        ctx.settings.signin_attempts,
        window,
    )
    .await?
    {
        SignInGate::Open => {}
        SignInGate::Wait { retry_after_secs } => return Ok(SignIn::Wait { retry_after_secs }),
        SignInGate::Paused { retry_after_secs } => {
            let failure = Failure::new(reason::RATE_LIMITED).email(typed_email);
            let reference = failures::record(ctx, client, "LIM", failure).await;
            tell_owner_sign_in_paused(ctx, typed_email, window).await?;
            return Err(AppError::RateLimited {
                reference,
                retry_after_secs,
            });
        }
    }
    // An account, or else a registration made with the old form (which
    // asked for the password at sign-up) still waiting for its link.
    let (account, waiting) = match Email::parse(typed_email) {
        Ok(email) => {
            let keys = ctx.keys.clone();
            ctx.db(move |conn| -> Result<_, diesel::result::Error> {
                let account = accounts::find_by_email(conn, &keys, email.as_str())?;
                let waiting = match account {
                    Some(_) => None,
                    None => registrations::find_pending_by_email(conn, &keys, email.as_str())?
                        .filter(|r| r.has_legacy_password()),
                };
                Ok((account, waiting))
            })
            .await?
        }
        Err(_) => (None, None),
    };
    let stored = match (&account, &waiting) {
        (Some(account), _) => Some(account.password_hash.clone()),
        (None, Some(registration)) => registration.legacy_password_hash.clone(),
        (None, None) => None,
    };
    let matches =
        crate::services::passwords::verify(&ctx.hashing, password, stored, "/login").await?;
    if matches && let (None, Some(registration)) = (&account, waiting) {
        return Ok(SignIn::Unverified {
            email: registration.email,
        });
    }
    match account {
        Some(account) if matches && account.suspended_at.is_some() => {
            tracing::info!("sign-in to a suspended account refused");
            Ok(SignIn::Suspended {
                case: account.suspended_case.unwrap_or_default(),
            })
        }
        Some(account) if matches => {
            limits::refund_sign_in(ctx, SCOPE, typed_email).await?;
            tracing::info!("citizen signed in");
            let kept = account.deletion_due_at.is_some()
                && super::own_data::cancel_deletion(ctx, &account.id).await?;
            Ok(SignIn::SignedIn {
                account_id: account.id,
                epoch: account.session_epoch,
                kept,
            })
        }
        _ => {
            // A mistyped password is for the citizen to fix, not for
            // support: the failure log (and a reference code to quote)
            // starts with the third wrong try on an address in an hour.
            let tries_key = format!(
                "signin-tries:{}",
                ctx.log
                    .keyed_hash("email", &typed_email.trim().to_lowercase())
            );
            let stuck = !limits::allow(ctx, vec![(tries_key, FREE_SIGN_IN_TRIES)])
                .await?
                .is_allowed();
            let reference = if stuck {
                let failure = Failure::new(reason::SIGN_IN_FAILED)
                    .fields(vec!["email", "password"])
                    .email(typed_email);
                Some(failures::record(ctx, client, "LGN", failure).await)
            } else {
                None
            };
            Ok(SignIn::Wrong { reference })
        }
    }
}

/// Mails the owner of the account (if it is one) once per pause: sign-in
/// is paused after too many wrong passwords, and how to get back in now.
async fn tell_owner_sign_in_paused(
    ctx: &Ctx<'_>,
    typed: &str,
    window: Duration,
) -> Result<(), AppError> {
    let Ok(email) = Email::parse(typed) else {
        return Ok(());
    };
    let once_key = format!(
        "signin-paused-mail:{}",
        ctx.log.keyed_hash("email", email.as_str())
    );
    let settings = ctx.settings.clone();
    let clock = ctx.clock.clone();
    let keys = ctx.keys.clone();
    let queued = ctx
        .db(move |conn| -> Result<bool, AppError> {
            let now = clock.now();
            if !limits::rate_allow(conn, &once_key, now, window, 1)?.is_allowed() {
                return Ok(false);
            }
            let Some(account) = accounts::find_by_email(conn, &keys, email.as_str())? else {
                return Ok(false);
            };
            let mail = crate::mail::sign_in_locked_mail(
                &settings,
                &account,
                settings.signin_attempts,
                window.num_minutes(),
                now,
            )
            .map_err(AppError::internal)?;
            crate::db::outbox::insert_mail(conn, &keys, &mail)?;
            Ok(true)
        })
        .await?;
    if queued {
        tracing::warn!("citizen sign-in paused after wrong passwords; owner mailed");
        ctx.mail_queued();
    }
    Ok(())
}

/// The account a cookie's session (`account_id`, `epoch`, session id
/// `sid`) still opens, or `None` when the session ended (see `sessions`)
/// or the account's epoch moved on.
pub async fn session_account(
    ctx: &Ctx<'_>,
    account_id: String,
    epoch: i64,
    sid: String,
    now: NaiveDateTime,
) -> Result<Option<Account>, AppError> {
    let account = super::sessions::subject(ctx, &super::sessions::CITIZEN, sid, account_id, now, {
        let keys = ctx.keys.clone();
        move |conn, id| accounts::find_by_id(conn, &keys, id)
    })
    .await?;
    Ok(account.filter(|a| a.session_epoch == epoch && a.is_verified() && a.suspended_at.is_none()))
}

/// Ends every session of the account, on every device; how many ended.
pub async fn end_every_session(
    ctx: &Ctx<'_>,
    account_id: String,
    now: NaiveDateTime,
) -> Result<usize, AppError> {
    ctx.db(move |conn| sessions::revoke_all(conn, sessions::KIND_CITIZEN, &account_id, now))
        .await
}

/// "Forgot password" for a well-formed address: limited per client and
/// address (`AppError::RateLimited`, logged); then a reset link to an
/// account, or for an address not verified yet, the verification link
/// again (if a registration waits). Nothing tells which happened.
pub async fn forgot_password(
    ctx: &Ctx<'_>,
    client: &Client,
    email: &Email,
    lang: Lang,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    if let Allowance::Refused { retry_after_secs } =
        limits::allow_for_client_and_address(ctx, client, "forgot", email.as_str()).await?
    {
        let failure = Failure::new(reason::RATE_LIMITED).email(email.as_str());
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let address = email.as_str().to_string();
    let account = ctx
        .db({
            let keys = ctx.keys.clone();
            move |conn| accounts::find_by_email(conn, &keys, &address)
        })
        .await?;
    let Some(account) = account else {
        // Not verified yet: what that citizen needs is the verification
        // link (sent only if a registration waits for this address).
        super::verification::resend(ctx, email, lang, now).await?;
        return Ok(());
    };
    queue_account_link(ctx, account, lang, now, false).await
}

/// Queues a password-reset link to the account's own address (older reset
/// links stop working): the reset mail, or with `reminder` the "which
/// address did I use?" mail, which also links to sign-in.
pub async fn queue_account_link(
    ctx: &Ctx<'_>,
    account: Account,
    lang: Lang,
    now: NaiveDateTime,
    reminder: bool,
) -> Result<(), AppError> {
    let settings = ctx.settings.clone();
    let keys = ctx.keys.clone();
    ctx.db(move |conn| -> Result<(), AppError> {
        let (token, token_hash) = crate::domain::link_token::new_link_token();
        let mail = crate::mail::reset_mail(
            &settings,
            lang,
            &account.id,
            &account.email,
            &account.full_name,
            &token,
            reminder,
            now,
        )
        .map_err(AppError::internal)?;
        let ttl = Duration::minutes(i64::from(settings.reset_token_ttl_minutes));
        accounts::issue_token(
            conn,
            &keys,
            &NewToken {
                token_hash: &token_hash,
                account_id: &account.id,
                purpose: PURPOSE_RESET,
                created_at: now,
                expires_at: now + ttl,
            },
            &mail,
        )?;
        Ok(())
    })
    .await?;
    tracing::info!("password reset link queued");
    ctx.mail_queued();
    Ok(())
}

/// The account a reset link `token` opens, while it works.
pub async fn reset_link_account(
    ctx: &Ctx<'_>,
    token: &str,
    now: NaiveDateTime,
) -> Result<Option<Account>, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(None);
    };
    let keys = ctx.keys.clone();
    ctx.db(move |conn| accounts::account_for_token(conn, &keys, &hash, PURPOSE_RESET, now))
        .await
}

/// What a new password through a reset link led to.
#[derive(Debug)]
pub enum Reset {
    /// The link does not work (any more).
    LinkInvalid,
    /// The form comes back: the password's problem (or none, for a stale
    /// page), and for a stale page the logged reference code.
    Again {
        problem: Option<Problem>,
        reference: Option<String>,
    },
    /// The password is changed and every session of the account ended.
    Done,
}

/// Sets a new password through the reset link `token`: the link and the
/// password are checked before any hashing; a stale page (`fresh` false)
/// is logged and changes nothing; the hash is made on the pool
/// (`AppError::Busy`, back to the link, when it is full).
pub async fn reset_password(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    password: &str,
    confirm: &str,
    fresh: bool,
    now: NaiveDateTime,
) -> Result<Reset, AppError> {
    let Some(account) = reset_link_account(ctx, token, now).await? else {
        return Ok(Reset::LinkInvalid);
    };
    let checked = Password::parse_for_owner(
        password,
        confirm,
        &account.email,
        &account.nik,
        &account.full_name,
        ctx.common_passwords,
        (now + chrono::Duration::hours(crate::clock::WIB_HOURS)).date(),
    );
    let password = match checked {
        Ok(password) if fresh => password,
        checked => {
            // As on the link page: a stale page is logged (the citizen met
            // it, and may call); a password typed wrongly is theirs to fix.
            let reference = if fresh {
                None
            } else {
                let failure = Failure::new(reason::STALE_FORM).email(&account.email);
                Some(failures::record(ctx, client, "STL", failure).await)
            };
            return Ok(Reset::Again {
                problem: checked.err(),
                reference,
            });
        }
    };
    let retry = format!("/password/reset?token={token}");
    let password_hash = crate::services::passwords::hash(&ctx.hashing, password, &retry).await?;
    let hash = crate::domain::link_token::link_token_hash(token).expect("checked above");
    let changed = ctx
        .db({
            let keys = ctx.keys.clone();
            move |conn| accounts::reset_password(conn, &keys, &hash, &password_hash, now)
        })
        .await?;
    if !changed {
        return Ok(Reset::LinkInvalid);
    }
    tracing::info!("password reset; every session of the account ended");
    Ok(Reset::Done)
}

/// Logs a reset link that does not work; the reference code for the page.
pub async fn note_invalid_reset_link(ctx: &Ctx<'_>, client: &Client) -> String {
    failures::record(ctx, client, "PWD", Failure::new(reason::RESET_LINK_INVALID)).await
}
