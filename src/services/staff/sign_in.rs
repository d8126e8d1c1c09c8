//! Staff sign-in: the password, then the authenticator app's code (or a
//! recovery code; or, for a staff member without one, the app's
//! enrolment), then a staff session record. Attempts are counted before
//! any check, in the database, per client and per account.

use chrono::{Duration, NaiveDateTime};

use crate::db::staff::{self as staff_db, LOCK_MINUTES, MAX_FAILED_LOGINS};
use crate::domain::second_factor::{self, SealingKey, TotpSecret};
use crate::error::AppError;
use crate::services::failures::{self, Client};
use crate::services::limits::{self, SignInGate};
use crate::services::{Ctx, sessions};

pub use crate::db::staff::Staff;

/// The limits' scopes: the password and the code count apart.
const PASSWORD_SCOPE: &str = "staff";
const CODE_SCOPE: &str = "staff-code";

/// The key that seals staff TOTP secrets at rest: a keyed hash of the
/// portal's secret for that purpose only (32 bytes), so it changes with
/// the secret.
pub fn sealing_key(log: &failures::FailureLog) -> SealingKey {
    let mut key = [0u8; 32];
    hex::decode_to_slice(log.keyed_hash("totp-at-rest", "v1"), &mut key)
        .expect("a keyed hash is 32 bytes of hex");
    SealingKey::new(&key)
}

/// What a staff password led to.
#[derive(Debug)]
pub enum PasswordCheck {
    /// Too soon after the last attempt, or paused.
    Refused(SignInGate),
    /// The account is locked after wrong passwords.
    Locked,
    /// Wrong address or password (or a disabled account).
    Wrong,
    /// Right: the second factor (or the session) comes next.
    Right(Box<Staff>),
}

/// Checks a staff member's password. Counted before any hashing,
/// atomically: 30 parallel guesses get 5 checks, not 30 (the account's
/// lock only shows what this enforces).
pub async fn check_password(
    ctx: &Ctx<'_>,
    client: &Client,
    typed_email: &str,
    password: String,
    now: NaiveDateTime,
) -> Result<PasswordCheck, AppError> {
    let email = typed_email.trim().to_lowercase();
    let gate = limits::reserve_sign_in(
        ctx,
        client,
        PASSWORD_SCOPE,
        &email,
        i64::from(MAX_FAILED_LOGINS),
        Duration::minutes(LOCK_MINUTES),
    )
    .await?;
    if gate.retry_after().is_some() {
        tracing::warn!("staff sign-in refused: too many attempts");
        return Ok(PasswordCheck::Refused(gate));
    }
    let lookup = email.clone();
    let found = ctx
        .db(move |conn| staff_db::find_by_email(conn, &lookup))
        .await?;
    if let Some(staff) = &found
        && staff.is_locked(now)
    {
        tracing::warn!("staff sign-in refused: account locked");
        return Ok(PasswordCheck::Locked);
    }
    let stored = found.as_ref().map(|s| s.password_hash.clone());
    let matches =
        crate::services::passwords::verify(&ctx.hashing, password, stored, "/staff/login").await?;
    match found {
        Some(staff) if matches && staff.disabled_at.is_none() => {
            limits::refund_sign_in(ctx, PASSWORD_SCOPE, &email).await?;
            let id = staff.id.clone();
            ctx.db(move |conn| staff_db::login_succeeded(conn, &id))
                .await?;
            Ok(PasswordCheck::Right(Box::new(staff)))
        }
        other => {
            if let Some(staff) = other {
                ctx.db(move |conn| staff_db::login_failed(conn, &staff.id, now))
                    .await?;
            }
            tracing::info!("staff sign-in refused");
            Ok(PasswordCheck::Wrong)
        }
    }
}

/// The staff member `id`, while the account is enabled and its session
/// epoch is still `epoch`.
pub async fn staff_member(
    ctx: &Ctx<'_>,
    id: String,
    epoch: i64,
) -> Result<Option<Staff>, AppError> {
    let found = ctx.db(move |conn| staff_db::find_by_id(conn, &id)).await?;
    Ok(found.filter(|s| s.disabled_at.is_none() && s.session_epoch == epoch))
}

/// What a second-factor code led to.
#[derive(Debug)]
pub enum CodeCheck {
    /// Too soon after the last attempt, or paused.
    Refused(SignInGate),
    /// Neither the app's current code nor an unused recovery code.
    Wrong,
    /// Accepted: start the session, audited as `action`.
    Accepted { action: &'static str },
    /// The app is enrolled; the recovery codes, to show once.
    Enrolled { codes: Vec<String> },
    /// Another tab enrolled meanwhile: ask for a code.
    EnrolledMeanwhile,
}

/// Checks the code of a staff member who gave the right password: against
/// the stored app secret (each time step once) or the recovery codes; or,
/// without a stored secret, against `enrolment` (the secret being shown),
/// which is then stored with new recovery codes. Wrong codes count against
/// the same kind of limit as wrong passwords, before any is checked.
pub async fn check_code(
    ctx: &Ctx<'_>,
    client: &Client,
    staff: &Staff,
    code: &str,
    enrolment: Option<&TotpSecret>,
    now: NaiveDateTime,
) -> Result<CodeCheck, AppError> {
    let gate = limits::reserve_sign_in(
        ctx,
        client,
        CODE_SCOPE,
        &staff.email,
        i64::from(MAX_FAILED_LOGINS),
        Duration::minutes(LOCK_MINUTES),
    )
    .await?;
    if gate.retry_after().is_some() {
        tracing::warn!("staff sign-in refused: too many attempts");
        return Ok(CodeCheck::Refused(gate));
    }
    let unix = now.and_utc().timestamp().max(0) as u64;
    let checked = match (&staff.totp_secret, enrolment) {
        (Some(stored), _) => {
            // A secret that cannot be opened (the portal's secret changed)
            // leaves the recovery codes, or `emeterai staff
            // reset-second-factor`.
            let secret = ctx.totp_key.open(stored, &staff.id);
            if secret.is_none() {
                tracing::warn!("staff TOTP secret cannot be opened; recovery codes only");
            }
            // A secret stored in clear before sealing is sealed now.
            let reseal = secret
                .as_ref()
                .filter(|_| !SealingKey::is_sealed(stored))
                .and_then(|s| ctx.totp_key.seal(s, &staff.id))
                .map(|sealed| (stored.clone(), sealed));
            let step = secret.and_then(|s| s.matching_step(code, unix));
            let id = staff.id.clone();
            let hash = second_factor::recovery_code_hash(code);
            ctx.db(
                move |conn| -> Result<Option<&'static str>, diesel::result::Error> {
                    if let Some((clear, sealed)) = reseal {
                        staff_db::seal_second_factor(conn, &id, &clear, &sealed)?;
                    }
                    if let Some(step) = step
                        && staff_db::accept_totp_step(conn, &id, step)?
                    {
                        return Ok(Some("sign_in"));
                    }
                    if let Some(hash) = hash
                        && staff_db::use_recovery_code(conn, &id, &hash, now)?
                    {
                        return Ok(Some("sign_in_recovery_code"));
                    }
                    Ok(None)
                },
            )
            .await?
            .map(|action| CodeCheck::Accepted { action })
        }
        (None, Some(secret)) => match secret.matching_step(code, unix) {
            Some(step) => {
                let codes = second_factor::new_recovery_codes();
                let hashes: Vec<String> = codes
                    .iter()
                    .filter_map(|c| second_factor::recovery_code_hash(c))
                    .collect();
                let id = staff.id.clone();
                let text = ctx
                    .totp_key
                    .seal(secret, &id)
                    .ok_or_else(|| AppError::internal("cannot seal the TOTP secret"))?;
                let enrolled = ctx
                    .db(move |conn| {
                        staff_db::enrol_second_factor(conn, &id, &text, Some(step), &hashes, true)
                    })
                    .await?;
                if !enrolled {
                    return Ok(CodeCheck::EnrolledMeanwhile);
                }
                Some(CodeCheck::Enrolled { codes })
            }
            None => None,
        },
        (None, None) => None,
    };
    let Some(accepted) = checked else {
        tracing::info!("staff second factor refused");
        return Ok(CodeCheck::Wrong);
    };
    limits::refund_sign_in(ctx, CODE_SCOPE, &staff.email).await?;
    Ok(accepted)
}

/// Starts a staff session: its audit row (`action`) and its record; the
/// record's id goes in the cookie.
pub async fn start_session(
    ctx: &Ctx<'_>,
    staff: &Staff,
    action: &str,
    now: NaiveDateTime,
) -> Result<String, AppError> {
    super::audit(ctx, &staff.email, action, String::new(), now).await?;
    tracing::info!("staff signed in");
    sessions::start(ctx, &sessions::STAFF, &staff.id, None, now).await
}

/// The staff member a cookie's session (`id`, `epoch`, session id `sid`)
/// still opens: the record not revoked, idle or too old; the account
/// enabled and its epoch unchanged.
pub async fn session_staff(
    ctx: &Ctx<'_>,
    id: String,
    epoch: i64,
    sid: String,
    now: NaiveDateTime,
) -> Result<Option<Staff>, AppError> {
    let found =
        sessions::subject(ctx, &sessions::STAFF, sid, id, now, staff_db::find_by_id).await?;
    Ok(found.filter(|s| s.disabled_at.is_none() && s.session_epoch == epoch))
}
