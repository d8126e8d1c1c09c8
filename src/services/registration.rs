//! Registration, details first: admission and photo checks before the
//! expensive work, draft photos kept for a form that came back, and the
//! submission itself (the pending registration, its photo, a link and its
//! mail in one transaction, idempotent per submission id). No password
//! here: it is chosen through the mailed link (`verification`).

use chrono::{Duration, NaiveDateTime};

use super::Ctx;
use crate::db::accounts::{self, NewUpload, UploadInfo};
use crate::db::identity::Identity;
use crate::db::registrations::{self, Details, PhotoUpload, Submission};
use crate::domain::{BirthDate, Email, FullName, KtpPhoto, Nik, Npwp, PhoneNumber, Problem};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::services::failures::{self, Client, Failure, reason};
use crate::services::limits::{self, Allowance};

pub use crate::db::accounts::UploadInfo as StoredPhoto;
pub use crate::db::registrations::SubmitOutcome;

/// Tries of one form with mistakes that are neither logged nor given a
/// reference code (typos the citizen fixes alone).
pub const FREE_FORM_TRIES: i64 = 2;

/// Draft photos one browser session may leave within a draft's lifetime.
pub const DRAFTS_PER_SESSION: i64 = 20;

/// A photo received with this request, checked, not stored yet.
pub struct NewPhoto {
    pub ktp: KtpPhoto,
    /// The name it is shown under: as sent, or "ktp" when the browser sent
    /// none.
    pub file_name: String,
}

impl NewPhoto {
    pub fn new(ktp: KtpPhoto, file_name: String) -> Self {
        let file_name = if file_name.is_empty() {
            "ktp".to_string()
        } else {
            file_name
        };
        NewPhoto { ktp, file_name }
    }
}

/// A valid form: every field parsed, a photo (new or a draft's), and the
/// submission's idempotency key.
pub struct NewRegistration {
    pub submission_key: String,
    pub answers: Answers,
    pub lang: Lang,
    pub draft_upload_id: Option<String>,
    pub new_photo: Option<NewPhoto>,
}

/// The typed answers of a valid form, parsed.
pub struct Answers {
    pub name: FullName,
    pub nik: Nik,
    pub birth: BirthDate,
    pub email: Email,
    pub phone: PhoneNumber,
    pub npwp: Option<Npwp>,
}

/// A photo file as the browser sent it, not checked yet.
pub struct SentPhoto {
    pub file_name: String,
    pub data: Vec<u8>,
    /// Larger than the limit: only its start was kept.
    pub truncated: bool,
}

/// A posted register form, as the handler read it.
pub struct Posted {
    /// The CSRF token and the submission id both checked out. A post that
    /// is not fresh stores nothing and decodes no photo.
    pub fresh: bool,
    /// The idempotency key of a valid submission id.
    pub submission_key: Option<String>,
    /// The submission id as posted (counts a form's tries).
    pub posted_submission: String,
    /// The typed answers, or the problems of those that did not parse.
    pub answers: Result<Answers, Vec<(&'static str, Problem)>>,
    /// The address and NIK as typed, for the failure log (hashed there).
    pub typed_email: String,
    pub typed_nik: String,
    /// The draft photo an earlier submission of this form left.
    pub draft_upload_id: Option<String>,
    pub photo: Option<SentPhoto>,
    /// Bounds the draft photos one browser session may leave.
    pub session_key: String,
    pub lang: Lang,
}

/// What a posted register form comes to.
pub enum Outcome {
    /// The form comes back: every problem (the photo's first), the photo
    /// it keeps, and a reference code when support should hear of it.
    CameBack {
        problems: Vec<(&'static str, Problem)>,
        photo: Option<StoredPhoto>,
        reference: Option<String>,
    },
    /// The check-your-email page for `email`, with what it may say besides.
    CheckEmail {
        email: String,
        notice: Option<CheckEmailNotice>,
    },
    /// A verified account already has the address or, with `nik_held`,
    /// the NIK: said, with the logged reference code.
    Taken {
        reference: String,
        nik_held: Option<NikHeld>,
    },
}

/// What the check-your-email page may say besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckEmailNotice {
    /// The address was waiting: its data replaced, a new link sent.
    Replaced,
    /// The data replaced; the link is held back by the cooldown.
    Cooldown,
}

/// A NIK a verified account holds: the "which address did I use?" form
/// asks for it again and shows the holding address masked.
pub struct NikHeld {
    pub nik: String,
    pub holder: Option<String>,
}

/// `POST /register`: the photo (a draft's, or a new one admitted and
/// checked), then either the form back with its problems (logged as the
/// citizen is stuck) or the submission and what it is answered with.
/// Admission comes before the expensive work, once per request.
pub async fn register(
    ctx: &Ctx<'_>,
    client: &Client,
    posted: Posted,
    now: NaiveDateTime,
) -> Result<Outcome, AppError> {
    let Posted {
        fresh,
        submission_key,
        posted_submission,
        answers,
        typed_email,
        typed_nik,
        draft_upload_id,
        photo: sent,
        session_key,
        lang,
    } = posted;
    let mut photo = match draft_upload_id {
        Some(id) => draft_photo(ctx, id).await?,
        None => None,
    };
    let mut new_photo: Option<NewPhoto> = None;
    let mut photo_problem = None;
    let mut admitted = false;
    match sent {
        Some(_) if !fresh => {}
        Some(file) => {
            admit_upload(ctx, client).await?;
            admitted = true;
            match check_photo(ctx, file.data, file.truncated).await? {
                Ok(ktp) => new_photo = Some(NewPhoto::new(ktp, file.file_name)),
                Err(problem) => photo_problem = Some(problem),
            }
        }
        None if photo.is_none() => photo_problem = Some(Problem::PhotoMissing),
        None => {}
    }

    let typed_problems = match (answers, photo_problem, fresh, submission_key) {
        (Ok(answers), None, true, Some(key)) => Ok((answers, key)),
        (answers, ..) => Err(answers.err().unwrap_or_default()),
    };
    let (answers, submission_key) = match typed_problems {
        Ok(ready) => ready,
        Err(typed_problems) => {
            // A new valid photo stays with the draft, so it need not be sent
            // again; a post that is not fresh stores nothing.
            if let Some(new) = new_photo {
                let replaces = photo.as_ref().map(|p| p.id.clone());
                if let Some(kept) = keep_draft_photo(ctx, &session_key, new, replaces, now).await? {
                    photo = Some(kept);
                }
            }
            let mut problems: Vec<_> = photo_problem
                .map(|p| ("ktp_photo", p))
                .into_iter()
                .collect();
            problems.extend(typed_problems);
            let why = if !fresh {
                reason::STALE_FORM
            } else if photo_problem.is_some_and(|p| p != Problem::PhotoMissing) {
                reason::UPLOAD_REJECTED
            } else {
                reason::VALIDATION
            };
            let failure = Failure::new(why)
                .fields(problems.iter().map(|(field, _)| *field).collect())
                .email(&typed_email)
                .nik(&typed_nik);
            let reference = form_came_back(ctx, client, failure, &posted_submission).await?;
            return Ok(Outcome::CameBack {
                problems,
                photo,
                reference,
            });
        }
    };

    if !admitted {
        admit_upload(ctx, client).await?;
    }
    let (email, nik) = (answers.email.clone(), answers.nik.clone());
    let draft_upload_id = photo.map(|p| p.id);
    let registration = NewRegistration {
        submission_key,
        answers,
        lang,
        draft_upload_id,
        new_photo,
    };
    let nik_taken = match submit(ctx, registration, now).await? {
        SubmitOutcome::Registered {
            email,
            replaced,
            mail_sent,
            ..
        } => {
            // "Replaced" tells that the address was waiting: limited like
            // the "already registered" answers; past the limit the page
            // says nothing more than for a new registration.
            let reveal = replaced && may_say_replaced(ctx, client, &email).await?;
            let notice = match (replaced, mail_sent) {
                (true, _) if reveal => Some(CheckEmailNotice::Replaced),
                (false, false) if !ctx.settings.enumeration_safe => {
                    Some(CheckEmailNotice::Cooldown)
                }
                _ => None,
            };
            return Ok(Outcome::CheckEmail { email, notice });
        }
        SubmitOutcome::EmailTaken => false,
        SubmitOutcome::NikTaken => true,
    };
    Ok(
        match taken(ctx, client, lang, &email, &nik, nik_taken, now).await? {
            Taken::Mailed => Outcome::CheckEmail {
                email: email.as_str().to_string(),
                notice: None,
            },
            Taken::Said { reference } => Outcome::Taken {
                reference,
                nik_held: match nik_taken {
                    true => Some(NikHeld {
                        nik: nik.as_str().to_string(),
                        holder: super::reminder::holder(ctx, nik.as_str()).await?,
                    }),
                    false => None,
                },
            },
        },
    )
}

/// Before a photo is stored (with a registration or a draft): the SQLite
/// file is still the one opened and writable (503 otherwise), the budget
/// for photos no account owns yet (503 past it), and the per-client hourly
/// limit (429, with a logged reference), counted in the database so it
/// holds across instances.
pub async fn admit_upload(ctx: &Ctx<'_>, client: &Client) -> Result<(), AppError> {
    ctx.check_storage()?;
    if ctx.upload_budget_reached() {
        tracing::warn!("upload budget reached: registration refused");
        return Err(AppError::unavailable("upload storage budget reached"));
    }
    let key = format!("register-ip:{}", limits::client_key(ctx.log, client));
    let limit = ctx.settings.registrations_per_ip_hour;
    if let Allowance::Refused { retry_after_secs } = limits::allow(ctx, vec![(key, limit)]).await? {
        let failure = Failure::new(reason::RATE_LIMITED);
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    Ok(())
}

/// Decodes and normalises a photo on the blocking pool, at most
/// `EMETERAI_PHOTO_CONCURRENCY` at once (a flood of camera photos waits its
/// turn instead of decoding all at once and exhausting memory).
pub async fn check_photo(
    ctx: &Ctx<'_>,
    data: Vec<u8>,
    truncated: bool,
) -> Result<Result<KtpPhoto, Problem>, AppError> {
    let _permit = ctx
        .photo_permits
        .acquire()
        .await
        .map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || KtpPhoto::parse(&data, truncated))
        .await
        .map_err(AppError::internal)
}

/// A draft's earlier photo, while no registration or account owns it.
pub async fn draft_photo(ctx: &Ctx<'_>, id: String) -> Result<Option<StoredPhoto>, AppError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Ok(None);
    }
    ctx.db(move |conn| accounts::find_draft_upload(conn, &id))
        .await
}

/// Keeps a valid photo with a form that came back, so it need not be sent
/// again; it replaces the form's earlier draft photo (`replaces`). Each
/// browser session (`session_key`) may leave `DRAFTS_PER_SESSION` within a
/// draft's lifetime: past that, `None`, and the photo must be chosen again.
pub async fn keep_draft_photo(
    ctx: &Ctx<'_>,
    session_key: &str,
    photo: NewPhoto,
    replaces: Option<String>,
    now: NaiveDateTime,
) -> Result<Option<StoredPhoto>, AppError> {
    let key = format!(
        "draft-session:{}",
        ctx.log.keyed_hash("session", session_key)
    );
    let decision = ctx
        .db(move |conn| {
            limits::rate_allow(
                conn,
                &key,
                now,
                Duration::hours(crate::mail::DRAFT_HOURS),
                DRAFTS_PER_SESSION,
            )
        })
        .await?;
    if !decision.is_allowed() {
        tracing::warn!("draft photo not kept: per-session bound reached");
        return Ok(None);
    }
    let stored = UploadInfo {
        id: uuid::Uuid::new_v4().to_string(),
        file_name: photo.file_name,
        size_bytes: photo.ktp.data().len() as i64,
    };
    let (id, file_name, size) = (
        stored.id.clone(),
        stored.file_name.clone(),
        stored.size_bytes,
    );
    let (key, sealed) = crate::db::keys::seal_photo(ctx.keys, &id, photo.ktp.data())?;
    ctx.db(move |conn| {
        accounts::insert_upload(
            conn,
            &NewUpload {
                id: &id,
                file_name: &file_name,
                content_type: photo.ktp.content_type(),
                size_bytes: size,
                data: &sealed,
                created_at: now,
                data_key_id: Some(&key.id),
            },
            &key,
        )
    })
    .await?;
    // One draft photo per form: the one it replaces goes.
    if let Some(old) = replaces {
        ctx.db(move |conn| accounts::delete_draft_upload(conn, &old))
            .await?;
    }
    Ok(Some(stored))
}

/// A form that came back (stale, or with mistakes): logs it, and returns
/// the reference code the page shows, when support should hear of it.
/// Typos are for the citizen to fix, not for support: a form with mistakes
/// is logged from its third try in an hour (`posted_submission` counts the
/// tries), when the citizen is stuck. Stale forms and refused photos are
/// logged at once.
pub async fn form_came_back(
    ctx: &Ctx<'_>,
    client: &Client,
    failure: Failure,
    posted_submission: &str,
) -> Result<Option<String>, AppError> {
    let stuck = failure.reason != reason::VALIDATION
        || !limits::allow(
            ctx,
            vec![(
                format!(
                    "form-tries:{}",
                    ctx.log.keyed_hash("submission", posted_submission)
                ),
                FREE_FORM_TRIES,
            )],
        )
        .await?
        .is_allowed();
    if !stuck {
        return Ok(None);
    }
    let prefix = if failure.reason == reason::STALE_FORM {
        "STL"
    } else {
        "DFT"
    };
    Ok(Some(failures::record(ctx, client, prefix, failure).await))
}

/// Stores the registration with its photo, a new link and its mail in one
/// transaction (the same outcome again for the same submission), and wakes
/// the mail worker when a mail was queued.
pub async fn submit(
    ctx: &Ctx<'_>,
    registration: NewRegistration,
    now: NaiveDateTime,
) -> Result<SubmitOutcome, AppError> {
    let NewRegistration {
        submission_key,
        answers:
            Answers {
                name,
                nik,
                birth,
                email,
                phone,
                npwp,
            },
        lang,
        draft_upload_id,
        new_photo,
    } = registration;
    let (token, token_hash) = crate::domain::link_token::new_link_token();
    let registration_id = uuid::Uuid::new_v4().to_string();
    let mail = crate::mail::verification_mail(
        ctx.settings,
        lang,
        &registration_id,
        email.as_str(),
        name.as_str(),
        &token,
        now,
    )
    .map_err(AppError::internal)?;
    let nik_hash = ctx.log.nik_hash(nik.as_str());
    let ttl = Duration::hours(i64::from(ctx.settings.verify_token_ttl_hours));
    let cooldown = Duration::seconds(i64::from(ctx.settings.resend_cooldown_secs));
    // The photo is sealed before the transaction, under a data key of its
    // own (no key is needed inside it).
    let upload_id = uuid::Uuid::new_v4().to_string();
    let sealed_photo = match new_photo {
        Some(photo) => {
            let (key, data) = crate::db::keys::seal_photo(ctx.keys, &upload_id, photo.ktp.data())?;
            Some((photo, key, data))
        }
        None => None,
    };
    let keys = ctx.keys.clone();
    let outcome = ctx
        .db(move |conn| {
            let new_photo = sealed_photo.as_ref().map(|(photo, key, data)| PhotoUpload {
                id: &upload_id,
                file_name: &photo.file_name,
                content_type: photo.ktp.content_type(),
                data,
                size_bytes: photo.ktp.data().len() as i64,
                key,
            });
            registrations::submit(
                conn,
                &Submission {
                    keys: &keys,
                    submission_id: &submission_key,
                    new_id: &registration_id,
                    details: Details {
                        identity: Identity {
                            email: email.as_str().to_string(),
                            nik: nik.as_str().to_string(),
                            full_name: name.as_str().to_string(),
                            birth_date: birth.to_iso(),
                            phone: phone.as_str().to_string(),
                            npwp: npwp.map(|n| n.as_str().to_string()),
                        },
                        nik_hash: Some(nik_hash),
                        lang: lang.code().to_string(),
                    },
                    draft_upload_id: draft_upload_id.as_deref().unwrap_or_default(),
                    new_photo,
                    token_hash: &token_hash,
                    token_expires_at: now + ttl,
                    mail,
                    cooldown,
                    now,
                },
            )
        })
        .await?;
    if let SubmitOutcome::Registered {
        replaced,
        mail_sent,
        replay,
        ..
    } = &outcome
    {
        if *replay {
            tracing::info!("registration submitted again; answering as the first time");
        } else if *mail_sent {
            tracing::info!(replaced, "registration stored; verification mail queued");
            ctx.mail_queued();
        } else {
            tracing::info!("registration data replaced; link held back by the cooldown");
        }
    }
    Ok(outcome)
}

/// Whether the page may say that the address was already waiting (its
/// data replaced): limited per client and address like the "already
/// registered" answers, and never with `EMETERAI_ENUMERATION_SAFE`.
pub async fn may_say_replaced(
    ctx: &Ctx<'_>,
    client: &Client,
    email: &str,
) -> Result<bool, AppError> {
    if ctx.settings.enumeration_safe {
        return Ok(false);
    }
    Ok(
        limits::allow_for_client_and_address(ctx, client, "pending", email)
            .await?
            .is_allowed(),
    )
}

/// What a citizen is told when a verified account already has the address
/// or the NIK.
#[derive(Debug)]
pub enum Taken {
    /// `EMETERAI_ENUMERATION_SAFE`: the page looks like a success; the
    /// guidance went to the mailbox, where only its owner reads it.
    Mailed,
    /// The page says so, with the logged reference code.
    Said { reference: String },
}

/// The answer to a registration whose address (`nik_taken` false) or NIK
/// a verified account already has. Saying so reveals that an account
/// exists, so it is rate-limited per client, per address and per NIK
/// (`AppError::RateLimited` past a limit).
pub async fn taken(
    ctx: &Ctx<'_>,
    client: &Client,
    lang: Lang,
    email: &Email,
    nik: &Nik,
    nik_taken: bool,
    now: NaiveDateTime,
) -> Result<Taken, AppError> {
    let why = if nik_taken {
        reason::NIK_TAKEN
    } else {
        reason::EMAIL_TAKEN
    };
    let failure = |reason| Failure::new(reason).email(email.as_str()).nik(nik.as_str());
    if ctx.settings.enumeration_safe {
        let reference = failures::record(ctx, client, "REG", failure(why)).await;
        let mail = crate::mail::guidance_mail(
            ctx.settings,
            lang,
            email.as_str(),
            nik_taken,
            &reference,
            now,
        )
        .map_err(AppError::internal)?;
        let keys = ctx.keys.clone();
        ctx.db(move |conn| crate::db::outbox::insert_mail(conn, &keys, &mail))
            .await?;
        ctx.mail_queued();
        return Ok(Taken::Mailed);
    }
    let limit = ctx.settings;
    let allowance = limits::allow(
        ctx,
        vec![
            (
                format!("taken-ip:{}", limits::client_key(ctx.log, client)),
                limit.rate_limit_per_ip_hour,
            ),
            (
                format!(
                    "taken-email:{}",
                    ctx.log.keyed_hash("email", email.as_str())
                ),
                limit.rate_limit_per_email_hour,
            ),
            (
                format!("taken-nik:{}", ctx.log.nik_hash(nik.as_str())),
                limit.rate_limit_per_email_hour,
            ),
        ],
    )
    .await?;
    if let Allowance::Refused { retry_after_secs } = allowance {
        let reference = failures::record(ctx, client, "LIM", failure(reason::RATE_LIMITED)).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let reference = failures::record(ctx, client, "REG", failure(why)).await;
    tracing::info!(reference = %reference, reason = why, "registration refused: already registered");
    Ok(Taken::Said { reference })
}
