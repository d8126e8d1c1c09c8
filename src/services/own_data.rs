//! The citizen's own data, as UU 27/2022 gives the data subject the right
//! to it: see everything held (the account page), take it (one JSON file
//! with the photo, after the password again), see who looked (the
//! processing record, from the staff audit), and delete the account
//! (after a waiting period in which signing in cancels it).

use base64::Engine;
use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use super::failures::{self, Client, Failure, reason};
use super::limits::{self, Allowance};
use crate::db::accounts::Account;
use crate::db::own_data::{self, FailureRecord, MailRecord, Processing};
use crate::db::sessions::Live;
use crate::error::AppError;

pub use crate::db::own_data::Processing as ProcessingEntry;
pub use crate::db::sessions::Live as LiveSession;

/// The processing record shown and downloaded, at most.
const RECORD_MAX: i64 = 500;

/// What the account page shows beside the account's own fields.
pub struct Overview {
    pub sessions: Vec<Live>,
    pub mails: Vec<MailRecord>,
    pub record: Vec<Processing>,
}

pub async fn overview(
    ctx: &Ctx<'_>,
    account: &Account,
    now: NaiveDateTime,
) -> Result<Overview, AppError> {
    let sessions =
        super::sessions::live(ctx, &super::sessions::CITIZEN, account.id.clone(), now).await?;
    let (keys, found) = (ctx.keys.clone(), account.clone());
    let (mails, record) = ctx
        .db(move |conn| -> diesel::QueryResult<_> {
            Ok((
                own_data::mails(conn, &found.id)?,
                own_data::processing_record(conn, &keys, &found, RECORD_MAX)?,
            ))
        })
        .await?;
    Ok(Overview {
        sessions,
        mails,
        record,
    })
}

/// The account's own KTP photo: content type and bytes.
pub async fn photo(
    ctx: &Ctx<'_>,
    account: &Account,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    let (keys, upload) = (ctx.keys.clone(), account.ktp_upload_id.clone());
    ctx.db(move |conn| crate::db::accounts::find_upload(conn, &keys, &upload))
        .await
}

/// Ends one of the account's sessions (by its id hash, as the account
/// page lists them).
pub async fn end_session(
    ctx: &Ctx<'_>,
    account_id: &str,
    id_hash: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    if id_hash.len() != 64 || !id_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    super::sessions::end_own(
        ctx,
        &super::sessions::CITIZEN,
        account_id.to_string(),
        id_hash.to_string(),
        now,
    )
    .await
}

/// Checks the password again before a download or a deletion (the
/// hashing pool's sign-in class); limited like sign-in attempts are not:
/// the session is already the owner's.
async fn password_again(
    ctx: &Ctx<'_>,
    account: &Account,
    password: String,
) -> Result<bool, AppError> {
    super::passwords::verify(
        &ctx.hashing,
        password,
        Some(account.password_hash.clone()),
        "/account",
    )
    .await
}

pub enum Export {
    /// The file: its name and its bytes (JSON).
    File {
        name: String,
        body: Vec<u8>,
    },
    WrongPassword,
}

/// The shape of the download (documented in the README, "Your own data").
pub const EXPORT_FORMAT: &str = "emeterai-own-data/1";

fn time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Everything held about the account, in one JSON file: details, the KTP
/// photo (base64), sessions, mails (kind, time, state; never their links),
/// failure-log rows and the processing record. Limited per account per
/// day (counted before the password is checked); the password first.
pub async fn export(
    ctx: &Ctx<'_>,
    client: &Client,
    account: &Account,
    password: String,
    now: NaiveDateTime,
) -> Result<Export, AppError> {
    let key = format!("export:{}", account.id);
    if let Allowance::Refused { retry_after_secs } = limits::allow_within(
        ctx,
        vec![(key, ctx.settings.exports_per_day)],
        Duration::days(1),
    )
    .await?
    {
        let reference =
            failures::record(ctx, client, "LIM", Failure::new(reason::RATE_LIMITED)).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    if !password_again(ctx, account, password).await? {
        return Ok(Export::WrongPassword);
    }
    let overview = overview(ctx, account, now).await?;
    let (keys, found) = (ctx.keys.clone(), account.clone());
    let failures: Vec<FailureRecord> = ctx
        .db(move |conn| own_data::failures_of(conn, &keys, &found))
        .await?;
    let photo = photo(ctx, account).await?;
    let document = serde_json::json!({
        "format": EXPORT_FORMAT,
        "generated_at": time(now),
        "controller": "e-Meterai registration portal",
        "account": {
            "id": account.id,
            "full_name": account.full_name,
            "nik": account.nik,
            "birth_date": account.birth_date,
            "email": account.email,
            "email_verified_at": account.verified_at.map(time),
            "phone": account.phone,
            "npwp": account.npwp,
            "language": account.lang,
            "created_at": time(account.created_at),
            "deletion_due_at": account.deletion_due_at.map(time),
        },
        "ktp_photo": photo.map(|(content_type, data)| serde_json::json!({
            "content_type": content_type,
            "base64": base64::engine::general_purpose::STANDARD.encode(data),
        })),
        "sessions": overview.sessions.iter().map(|s| serde_json::json!({
            "started_at": time(s.created_at),
            "last_seen_at": time(s.last_seen_at),
            "device": s.device,
            "network": s.network,
        })).collect::<Vec<_>>(),
        "mails": overview.mails.iter().map(|m| serde_json::json!({
            "kind": m.kind,
            "queued_at": time(m.created_at),
            "status": m.status,
            "sent_at": m.sent_at.map(time),
            "delivery": m.delivery,
        })).collect::<Vec<_>>(),
        "failures": failures.iter().map(|f| serde_json::json!({
            "reference": f.reference,
            "occurred_at": time(f.occurred_at),
            "reason": f.reason,
            "fields": f.fields,
            "path": f.path,
        })).collect::<Vec<_>>(),
        "processing_record": overview.record.iter().map(|p| serde_json::json!({
            "at": time(p.at),
            "by": "support staff",
            "action": p.action,
            "record": p.record,
            "reason": p.reason,
        })).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec_pretty(&document).map_err(AppError::internal)?;
    tracing::info!("a citizen downloaded their own data");
    Ok(Export::File {
        name: format!("emeterai-data-{}.json", now.format("%Y%m%d")),
        body,
    })
}

pub enum Deletion {
    /// Asked: it is carried out then, unless cancelled.
    Requested {
        due: NaiveDateTime,
    },
    /// Asked before: nothing changed.
    Already {
        due: NaiveDateTime,
    },
    WrongPassword,
}

/// "Delete my account": the password again, then the deletion is due after
/// `EMETERAI_DELETION_WAIT_DAYS`; the owner is mailed what will be deleted
/// and kept, and that signing in cancels it.
pub async fn request_deletion(
    ctx: &Ctx<'_>,
    account: &Account,
    password: String,
    now: NaiveDateTime,
) -> Result<Deletion, AppError> {
    if let Some(due) = account.deletion_due_at {
        return Ok(Deletion::Already { due });
    }
    if !password_again(ctx, account, password).await? {
        return Ok(Deletion::WrongPassword);
    }
    let due = now + Duration::days(i64::from(ctx.settings.deletion_wait_days));
    let (keys, settings, found) = (ctx.keys.clone(), ctx.settings.clone(), account.clone());
    let asked = ctx
        .db(move |conn| -> Result<bool, AppError> {
            let due_text = crate::clock::wib_text(due);
            let mail = crate::mail::deletion_mail(&settings, &found, &due_text, now)
                .map_err(AppError::internal)?;
            crate::db::retry_busy(|| {
                diesel::Connection::transaction(conn, |conn| {
                    if !own_data::request_deletion(conn, &found.id, due)? {
                        return Ok(false);
                    }
                    crate::db::outbox::insert_mail(conn, &keys, &mail)?;
                    Ok(true)
                })
            })
            .map_err(AppError::from)
        })
        .await?;
    if !asked {
        return Ok(Deletion::Already { due });
    }
    ctx.mail_queued();
    tracing::info!("account deletion requested");
    Ok(Deletion::Requested { due })
}

/// Cancels a pending deletion (the account page's button, or signing in).
pub async fn cancel_deletion(ctx: &Ctx<'_>, account_id: &str) -> Result<bool, AppError> {
    let id = account_id.to_string();
    let cancelled = ctx
        .db(move |conn| own_data::cancel_deletion(conn, &id))
        .await?;
    if cancelled {
        tracing::info!("account deletion cancelled");
    }
    Ok(cancelled)
}

/// Carries out the deletions that are due (the worker, in batches); how
/// many accounts were deleted.
pub async fn carry_out_deletions(ctx: &Ctx<'_>, now: NaiveDateTime) -> Result<usize, AppError> {
    let keys = ctx.keys.clone();
    let wait = Duration::days(i64::from(ctx.settings.deletion_wait_days));
    let deleted = ctx
        .db(move |conn| -> diesel::QueryResult<usize> {
            let mut deleted = 0;
            for id in own_data::due_deletions(conn, now, 100)? {
                if own_data::delete_account(conn, &keys, &id, |due| due - wait, now)? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
        .await?;
    if deleted > 0 {
        tracing::info!(deleted, "accounts deleted at their owners' request");
    }
    Ok(deleted)
}
