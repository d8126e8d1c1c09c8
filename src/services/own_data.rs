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
                diesel::Connection::transaction(conn, |conn| -> Result<bool, AppError> {
                    if !own_data::request_deletion(conn, &found.id, due)? {
                        return Ok(false);
                    }
                    crate::db::outbox::insert_mail(conn, &keys, &mail)?;
                    Ok(true)
                })
            })
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

// ------------------------------------------------------------- corrections

pub use crate::db::account_requests::EmailChanged;
use crate::db::account_requests::{self as requests, Correction, RequestRow};
use crate::domain::{BirthDate, Email, FullName, KtpPhoto, PhoneNumber};

/// Hours staff have to answer a request (the law's 3×24 hours).
pub const ANSWER_HOURS: i64 = 72;

/// A new phone number, normalised as at sign-up, in force at once.
pub async fn change_phone(
    ctx: &Ctx<'_>,
    account: &Account,
    phone: &PhoneNumber,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let (keys, found, phone) = (
        ctx.keys.clone(),
        account.clone(),
        phone.as_str().to_string(),
    );
    ctx.db(move |conn| requests::change_phone(conn, &keys, &found, &phone, now))
        .await?;
    tracing::info!("a citizen changed their phone number");
    Ok(())
}

/// A new email address: a link to it (limited per account and address
/// like the other mails), which makes it the account's once opened. When
/// another account holds it, that address is told instead, without a
/// link: the page says the same either way.
pub async fn start_email_change(
    ctx: &Ctx<'_>,
    client: &Client,
    account: &Account,
    email: &Email,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    if let Allowance::Refused { retry_after_secs } =
        limits::allow_for_client_and_address(ctx, client, "email-change", email.as_str()).await?
    {
        let reference =
            failures::record(ctx, client, "LIM", Failure::new(reason::RATE_LIMITED)).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let (keys, settings, found) = (ctx.keys.clone(), ctx.settings.clone(), account.clone());
    let new_email = email.as_str().to_string();
    ctx.db(move |conn| -> Result<(), AppError> {
        if crate::db::accounts::email_taken(conn, &keys, &new_email)? {
            let mail = crate::mail::own_data_mail(
                &settings,
                &found,
                &new_email,
                crate::mail::OwnDataMail::EmailChangeRefused,
                None,
                None,
                now,
            )
            .map_err(AppError::internal)?;
            crate::db::outbox::insert_mail(conn, &keys, &mail)?;
            return Ok(());
        }
        let (token, hash) = crate::domain::link_token::new_link_token();
        let link = format!("{}/account/email/confirm?token={token}", settings.base_url);
        let mail = crate::mail::own_data_mail(
            &settings,
            &found,
            &new_email,
            crate::mail::OwnDataMail::EmailChangeLink,
            Some(&link),
            None,
            now,
        )
        .map_err(AppError::internal)?;
        let expires = now + Duration::hours(24);
        requests::start_email_change(conn, &keys, &found, &new_email, &hash, expires, &mail, now)?;
        Ok(())
    })
    .await?;
    ctx.mail_queued();
    Ok(())
}

/// The new address an email-change link stands for, masked (`None`: the
/// link does not work).
pub async fn look_email_change(
    ctx: &Ctx<'_>,
    token: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(None);
    };
    let keys = ctx.keys.clone();
    let found = ctx
        .db(move |conn| requests::find_email_change(conn, &keys, &hash, now))
        .await?;
    Ok(found.map(|(_, email)| crate::domain::email_mask(&email)))
}

/// The link's button: the new address is the account's; the old one is
/// told, with a "not me" link.
pub async fn confirm_email_change(
    ctx: &Ctx<'_>,
    token: &str,
    now: NaiveDateTime,
) -> Result<EmailChanged, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(EmailChanged::Gone);
    };
    let (keys, settings) = (ctx.keys.clone(), ctx.settings.clone());
    let changed = ctx
        .db(move |conn| {
            let tell_old = |account: &Account| {
                crate::mail::own_data_mail(
                    &settings,
                    account,
                    &account.email,
                    crate::mail::OwnDataMail::EmailChanged,
                    None,
                    None,
                    now,
                )
                .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))
            };
            requests::confirm_email_change(conn, &keys, &hash, tell_old, now)
        })
        .await?;
    if matches!(changed, EmailChanged::Done { .. }) {
        ctx.mail_queued();
        tracing::info!("a citizen changed their email address");
    }
    Ok(changed)
}

/// A correction of name and birth date, with a new KTP photo, for staff.
pub async fn request_correction(
    ctx: &Ctx<'_>,
    account: &Account,
    name: &FullName,
    birth: &BirthDate,
    note: &str,
    photo: KtpPhoto,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let correction = Correction {
        full_name: name.as_str().to_string(),
        birth_date: birth.to_iso(),
        note: note.chars().take(1000).collect(),
    };
    let (keys, found) = (ctx.keys.clone(), account.clone());
    let due = now + Duration::hours(ANSWER_HOURS);
    ctx.db(move |conn| {
        requests::request_correction(
            conn,
            &keys,
            &found,
            &correction,
            (photo.content_type(), photo.data()),
            due,
            now,
        )
    })
    .await?;
    tracing::info!("a citizen asked for a correction");
    Ok(())
}

/// A row of the staff's requests queue.
pub struct QueueRow {
    pub request: RequestRow,
    pub email: String,
}

/// The staff's queue: requests (open ones by deadline, then answered
/// ones), deletions waiting for their day, and deletions carried out.
pub struct Queue {
    pub requests: Vec<QueueRow>,
    /// (masked address, due)
    pub deletions: Vec<(String, NaiveDateTime)>,
    /// (requested, deleted)
    pub deleted: Vec<(NaiveDateTime, NaiveDateTime)>,
}

pub async fn queue(ctx: &Ctx<'_>) -> Result<Queue, AppError> {
    let keys = ctx.keys.clone();
    ctx.db(move |conn| -> diesel::QueryResult<Queue> {
        let mut rows = Vec::new();
        for request in requests::queue(conn, 200)? {
            let email = crate::db::accounts::find_by_id(conn, &keys, &request.account_id)?
                .map(|a| crate::domain::email_mask(&a.email))
                .unwrap_or_default();
            rows.push(QueueRow { request, email });
        }
        Ok(Queue {
            requests: rows,
            deletions: own_data::pending_deletions(conn, &keys, 200)?
                .into_iter()
                .map(|(email, due)| (crate::domain::email_mask(&email), due))
                .collect(),
            deleted: own_data::deletions_done(conn, 200)?,
        })
    })
    .await
}

/// One request with what staff need to decide it: the account as it is,
/// the correction asked for.
pub struct RequestDetail {
    pub request: RequestRow,
    pub account: Option<Account>,
    pub correction: Option<Correction>,
}

pub async fn request_detail(
    ctx: &Ctx<'_>,
    id: &str,
    now: NaiveDateTime,
) -> Result<Option<RequestDetail>, AppError> {
    let (keys, id) = (ctx.keys.clone(), id.to_string());
    ctx.db(move |conn| -> diesel::QueryResult<Option<RequestDetail>> {
        let Some(request) = requests::find(conn, &id)? else {
            return Ok(None);
        };
        let account = crate::db::accounts::find_by_id(conn, &keys, &request.account_id)?;
        let correction = match (&account, request.sealed.is_some()) {
            (Some(account), true) => {
                Some(requests::open_correction(conn, &keys, &request, account, now)?.0)
            }
            _ => None,
        };
        Ok(Some(RequestDetail {
            request,
            account,
            correction,
        }))
    })
    .await
}

/// The new KTP photo of an open correction.
pub async fn request_photo(
    ctx: &Ctx<'_>,
    id: &str,
    now: NaiveDateTime,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    let (keys, id) = (ctx.keys.clone(), id.to_string());
    ctx.db(move |conn| -> diesel::QueryResult<_> {
        let Some(request) = requests::find(conn, &id)? else {
            return Ok(None);
        };
        let Some(account) = crate::db::accounts::find_by_id(conn, &keys, &request.account_id)?
        else {
            return Ok(None);
        };
        if request.photo.is_none() {
            return Ok(None);
        }
        let (_, photo) = requests::open_correction(conn, &keys, &request, &account, now)?;
        Ok(Some((
            request
                .photo_type
                .clone()
                .unwrap_or_else(|| "image/jpeg".into()),
            photo,
        )))
    })
    .await
}

/// Decides an open correction, mailing the citizen (the handler audits).
/// False when it was decided meanwhile or the account is gone.
pub async fn decide(
    ctx: &Ctx<'_>,
    id: &str,
    approve: bool,
    staff: &str,
    decision: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let (keys, settings) = (ctx.keys.clone(), ctx.settings.clone());
    let (id, staff, decision) = (id.to_string(), staff.to_string(), decision.to_string());
    let decided = ctx
        .db(move |conn| -> Result<bool, AppError> {
            let Some(request) = requests::find(conn, &id)? else {
                return Ok(false);
            };
            let Some(account) = crate::db::accounts::find_by_id(conn, &keys, &request.account_id)?
            else {
                return Ok(false);
            };
            if request.status != requests::STATUS_OPEN {
                return Ok(false);
            }
            let what = if approve {
                crate::mail::OwnDataMail::CorrectionApproved
            } else {
                crate::mail::OwnDataMail::CorrectionRejected
            };
            let mail = crate::mail::own_data_mail(
                &settings,
                &account,
                &account.email,
                what,
                None,
                Some(&decision),
                now,
            )
            .map_err(AppError::internal)?;
            Ok(requests::decide(
                conn, &keys, &request, &account, approve, &staff, &decision, &mail, now,
            )?)
        })
        .await?;
    if decided {
        ctx.mail_queued();
    }
    Ok(decided)
}

/// The KTP photo the account of a request has now.
pub async fn request_current_photo(
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    let (keys, id) = (ctx.keys.clone(), id.to_string());
    ctx.db(move |conn| -> Result<_, AppError> {
        let Some(request) = requests::find(conn, &id)? else {
            return Ok(None);
        };
        let Some(account) = crate::db::accounts::find_by_id(conn, &keys, &request.account_id)?
        else {
            return Ok(None);
        };
        crate::db::accounts::find_upload(conn, &keys, &account.ktp_upload_id)
    })
    .await
}
