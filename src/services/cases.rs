//! "Someone else used my NIK", online and tracked: a citizen reports it
//! with a KTP photo and a selfie holding it; the report opens a case for
//! the NIK (or joins the one open); staff review it in the console and
//! release the NIK (the account that holds it is suspended, its owner told
//! how to object) or reject the report with a reason. Every step is
//! audited by the staff handlers and mailed to the citizens it concerns;
//! each party follows the case on a status page of its own.

use chrono::{Duration, NaiveDateTime};
use diesel::Connection;

use super::Ctx;
use super::failures::{self, Client, Failure, reason};
use super::limits::{self, Allowance};
use crate::db::accounts::Account;
use crate::db::cases::{self, Case, Contact, Party, PhotoInfo, Step};
use crate::domain::{Email, KtpPhoto, Nik, PhoneNumber};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::mail::CaseStep;

pub use crate::db::cases::{
    Event, PHOTO_SELFIE, Queue, ROLE_HOLDER, ROLE_REPORTER, STATUS_REJECTED, STATUS_RESOLVED, event,
};

/// Reference prefix of cases ("kasus").
pub const PREFIX: &str = "KSS";

/// Longest statement or reply, in characters.
pub const MESSAGE_MAX: usize = 2000;

/// Replies one party may send per hour.
const REPLIES_PER_HOUR: i64 = 10;

/// A report as the form gave it, checked.
pub struct Report {
    pub nik: Nik,
    pub email: Email,
    pub phone: PhoneNumber,
    pub statement: String,
    pub lang: Lang,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// A case holds the report: its reference, whether the report joined
    /// a case already open, and the reporter's status-page token.
    Filed {
        reference: String,
        joined: bool,
        token: String,
    },
    /// No account holds the NIK: it can simply be registered (never said
    /// in the enumeration-safe mode, where a case is opened regardless).
    NotHeld,
}

/// The status-page token of a party: derived from its id with the
/// portal's secret (so every mail about the case can carry the link),
/// stored only as its SHA-256.
fn link_token(ctx: &Ctx<'_>, party_id: &str) -> String {
    ctx.log.keyed_hash("case-link", party_id)
}

/// Before the photos are decoded: storage writable, and the limits per
/// client (hourly, as for registrations), per NIK and per contact address
/// (daily), counted in the database; past one, `AppError::RateLimited`.
pub async fn admit(
    ctx: &Ctx<'_>,
    client: &Client,
    nik: &Nik,
    email: &Email,
) -> Result<(), AppError> {
    ctx.check_storage()?;
    let per_client = vec![(
        format!("report-ip:{}", limits::client_key(ctx.log, client)),
        ctx.settings.registrations_per_ip_hour,
    )];
    let per_day = vec![
        (
            format!("report-nik:{}", ctx.log.nik_hash(nik.as_str())),
            ctx.settings.reports_per_day,
        ),
        (
            format!(
                "report-email:{}",
                ctx.log.keyed_hash("email", email.as_str())
            ),
            ctx.settings.reports_per_day,
        ),
    ];
    let mut allowance = limits::allow(ctx, per_client).await?;
    if allowance.is_allowed() {
        allowance = limits::allow_within(ctx, per_day, Duration::days(1)).await?;
    }
    if let Allowance::Refused { retry_after_secs } = allowance {
        let failure = Failure::new(reason::RATE_LIMITED)
            .email(email.as_str())
            .nik(nik.as_str());
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    Ok(())
}

/// Files a checked report with its two normalised photos: the case (new
/// or joined), a failure-log row for staff (reason `nik_reported`, so the
/// report is in the timeline of that NIK and address), and the "received"
/// mail with the status link, in one transaction.
pub async fn file(
    ctx: &Ctx<'_>,
    client: &Client,
    report: Report,
    ktp: KtpPhoto,
    selfie: KtpPhoto,
    now: NaiveDateTime,
) -> Result<Reported, AppError> {
    if !ctx.settings.enumeration_safe {
        let (keys, nik) = (ctx.keys.clone(), report.nik.as_str().to_string());
        let held = ctx
            .db(move |conn| crate::db::accounts::nik_taken(conn, &keys, &nik))
            .await?;
        if !held {
            return Ok(Reported::NotHeld);
        }
    }
    let party_id = uuid::Uuid::new_v4().to_string();
    let token = link_token(ctx, &party_id);
    let token_hash = crate::domain::link_token::hash_link_token(&token);
    let contact = Contact {
        email: report.email.as_str().to_string(),
        phone: report.phone.as_str().to_string(),
        statement: report.statement.clone(),
    };
    let (case_reference, join_reference) = (
        crate::reference::new_reference(PREFIX),
        crate::reference::new_reference(PREFIX),
    );
    let due_at = now + Duration::hours(i64::from(ctx.settings.case_answer_hours));
    let (keys, settings) = (ctx.keys.clone(), ctx.settings.clone());
    let nik = report.nik.as_str().to_string();
    let lang = report.lang;
    let filed = ctx
        .db({
            let token = token.clone();
            move |conn| -> Result<cases::Filed, AppError> {
                let report = cases::NewReport {
                    nik: &nik,
                    contact: &contact,
                    lang: lang.code(),
                    party_id: &party_id,
                    token_hash: &token_hash,
                    photos: vec![
                        cases::NewPhoto {
                            kind: cases::PHOTO_KTP,
                            content_type: ktp.content_type(),
                            data: ktp.data(),
                        },
                        cases::NewPhoto {
                            kind: cases::PHOTO_SELFIE,
                            content_type: selfie.content_type(),
                            data: selfie.data(),
                        },
                    ],
                    case_reference: &case_reference,
                    join_reference: &join_reference,
                    due_at,
                    now,
                };
                let tell = |conn: &mut crate::db::DbConn, filed: &cases::Filed| {
                    let mail = crate::mail::case_mail(
                        &settings,
                        lang,
                        &contact.email,
                        CaseStep::Received,
                        &filed.reference,
                        &token,
                        None,
                        now,
                    )
                    .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
                    crate::db::outbox::insert_mail(conn, &keys, &mail)
                };
                Ok(cases::file_report(conn, &keys, &report, tell)?)
            }
        })
        .await?;
    ctx.mail_queued();
    let failure = Failure::new(reason::NIK_REPORTED)
        .email(report.email.as_str())
        .nik(report.nik.as_str());
    failures::record_as(ctx, client, &filed.failure_reference, failure).await;
    tracing::warn!(case = %filed.reference, joined = filed.joined, "NIK reported as used by someone else");
    Ok(Reported::Filed {
        reference: filed.reference,
        joined: filed.joined,
        token,
    })
}

/// What a party sees on the case's status page.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub reference: String,
    pub status: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub open: bool,
    /// The steps this party may read: every status change and staff
    /// message, and its own messages (never another party's).
    pub events: Vec<Event>,
    /// A reply (or, for the holder of a released NIK, an objection) can
    /// be sent.
    pub can_reply: bool,
}

async fn by_token(ctx: &Ctx<'_>, token: &str) -> Result<Option<(Case, Party)>, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(None);
    };
    let keys = ctx.keys.clone();
    ctx.db(move |conn| cases::find_by_token(conn, &keys, &hash))
        .await
}

fn may_reply(case: &Case, party: &Party) -> bool {
    case.row.is_open()
        || (party.role == cases::ROLE_HOLDER && case.row.status == cases::STATUS_RESOLVED)
}

/// The status page of the party a token belongs to (`None`: no such link).
pub async fn status(ctx: &Ctx<'_>, token: &str) -> Result<Option<StatusView>, AppError> {
    let Some((case, party)) = by_token(ctx, token).await? else {
        return Ok(None);
    };
    let keys = ctx.keys.clone();
    let found = case.clone();
    let events = ctx
        .db(move |conn| cases::events(conn, &keys, &found))
        .await?;
    let staff_actor = |e: &Event| e.actor != cases::ROLE_REPORTER && e.actor != cases::ROLE_HOLDER;
    let events = events
        .into_iter()
        .filter(|e| e.kind != event::ASSIGNED)
        .filter(|e| staff_actor(e) || e.party_id.as_deref() == Some(party.id.as_str()))
        // Another reporter's joining is not this party's business.
        .filter(|e| e.kind != event::JOINED || e.party_id.as_deref() == Some(party.id.as_str()))
        .collect();
    Ok(Some(StatusView {
        can_reply: may_reply(&case, &party),
        reference: case.row.reference,
        status: case.row.status,
        role: party.role,
        created_at: case.row.created_at,
        due_at: case.row.due_at,
        open: case.row.closed_at.is_none(),
        events,
    }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replied {
    /// Received: the case's reference.
    Sent {
        reference: String,
    },
    /// The case is closed (for a reporter) or cannot take it any more.
    Closed {
        reference: String,
    },
    Unknown,
}

/// A party's reply on its status page. A reporter's reply to a case that
/// waits for them puts it back in review with a fresh answer clock; the
/// holder's message after the NIK was released is an objection, which
/// reopens the case for staff. Limited per party.
pub async fn reply(
    ctx: &Ctx<'_>,
    client: &Client,
    token: &str,
    message: &str,
    now: NaiveDateTime,
) -> Result<Replied, AppError> {
    let Some((case, party)) = by_token(ctx, token).await? else {
        return Ok(Replied::Unknown);
    };
    let reference = case.row.reference.clone();
    if !may_reply(&case, &party) {
        return Ok(Replied::Closed { reference });
    }
    let key = format!("case-reply:{}", party.id);
    if let Allowance::Refused { retry_after_secs } =
        limits::allow(ctx, vec![(key, REPLIES_PER_HOUR)]).await?
    {
        let failure = Failure::new(reason::RATE_LIMITED);
        let reference = failures::record(ctx, client, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let due = now + Duration::hours(i64::from(ctx.settings.case_answer_hours));
    let objection = !case.row.is_open();
    let (kind, from, to): (&str, &[&str], Option<&str>) = if objection {
        (
            event::OBJECTED,
            &[cases::STATUS_RESOLVED],
            Some(cases::STATUS_IN_REVIEW),
        )
    } else if case.row.status == cases::STATUS_WAITING {
        (event::REPLY, cases::OPEN, Some(cases::STATUS_IN_REVIEW))
    } else {
        (event::REPLY, cases::OPEN, None)
    };
    let message: String = message.trim().chars().take(MESSAGE_MAX).collect();
    let (keys, settings) = (ctx.keys.clone(), ctx.settings.clone());
    let token = token.to_string();
    let lang = Lang::from_code(&party.lang).unwrap_or_default();
    let done = ctx
        .db(move |conn| -> Result<bool, AppError> {
            // The whole transaction again when SQLite is busy: it read
            // (the case's key) before its first write.
            crate::db::retry_busy(|| {
                conn.transaction(|conn| {
                    let moved = cases::step(
                        conn,
                        &keys,
                        &case,
                        &Step {
                            actor: &party.role,
                            kind,
                            party_id: Some(&party.id),
                            message: Some(&message),
                            from,
                            to,
                            due_at: to.map(|_| due),
                            assign: None,
                            now,
                        },
                    )?;
                    if moved && objection {
                        let mail = crate::mail::case_mail(
                            &settings,
                            lang,
                            &party.contact.email,
                            CaseStep::Objection,
                            &case.row.reference,
                            &token,
                            None,
                            now,
                        )
                        .map_err(AppError::internal)?;
                        crate::db::outbox::insert_mail(conn, &keys, &mail)?;
                    }
                    Ok(moved)
                })
            })
        })
        .await?;
    if objection && done {
        ctx.mail_queued();
        tracing::warn!(case = %reference, "the holder of a released NIK objected");
    }
    Ok(if done {
        Replied::Sent { reference }
    } else {
        Replied::Closed { reference }
    })
}

// ------------------------------------------------------------------ staff

pub async fn queue(ctx: &Ctx<'_>, which: Queue) -> Result<Vec<(Case, i64)>, AppError> {
    let keys = ctx.keys.clone();
    ctx.db(move |conn| cases::queue(conn, &keys, which, 200))
        .await
}

/// Everything staff see of a case.
pub struct Detail {
    pub case: Case,
    pub parties: Vec<Party>,
    pub events: Vec<Event>,
    pub photos: Vec<PhotoInfo>,
    /// The account that holds the NIK (or held it, once released).
    pub holder: Option<Account>,
}

fn holder_of(
    conn: &mut crate::db::DbConn,
    keys: &crate::domain::sealed::KeyRing,
    case: &Case,
) -> diesel::QueryResult<Option<Account>> {
    match &case.row.holder_account_id {
        Some(id) => crate::db::accounts::find_by_id(conn, keys, id),
        None => crate::db::accounts::find_by_nik(conn, keys, &case.nik),
    }
}

pub async fn detail(ctx: &Ctx<'_>, reference: &str) -> Result<Option<Detail>, AppError> {
    let (keys, reference) = (ctx.keys.clone(), reference.to_string());
    ctx.db(move |conn| -> diesel::QueryResult<Option<Detail>> {
        let Some(case) = cases::find_by_reference(conn, &keys, &reference)? else {
            return Ok(None);
        };
        Ok(Some(Detail {
            parties: cases::parties(conn, &keys, &case)?,
            events: cases::events(conn, &keys, &case)?,
            photos: cases::photos(conn, &case.row.id)?,
            holder: holder_of(conn, &keys, &case)?,
            case,
        }))
    })
    .await
}

/// The case a failure-log row (a report) belongs to, for the failure page.
pub async fn reference_of_failure(
    ctx: &Ctx<'_>,
    failure: &str,
) -> Result<Option<String>, AppError> {
    let failure = failure.to_string();
    ctx.db(move |conn| cases::reference_of_failure(conn, &failure))
        .await
}

/// A reporter's photo of the case, or (`photo` = `holder`) the KTP photo
/// of the account that holds the NIK: content type and bytes.
pub async fn photo(
    ctx: &Ctx<'_>,
    reference: &str,
    photo: &str,
) -> Result<Option<(String, Vec<u8>)>, AppError> {
    let (keys, reference, photo) = (ctx.keys.clone(), reference.to_string(), photo.to_string());
    ctx.db(move |conn| -> Result<_, AppError> {
        let Some(case) = cases::find_by_reference(conn, &keys, &reference)? else {
            return Ok(None);
        };
        if photo == "holder" {
            let Some(holder) = holder_of(conn, &keys, &case)? else {
                return Ok(None);
            };
            return crate::db::accounts::find_upload(conn, &keys, &holder.ktp_upload_id);
        }
        Ok(cases::open_photo(conn, &keys, &case, &photo)?)
    })
    .await
}

/// What a staff member does with a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take it: assigned to oneself, and in review.
    Assign,
    /// Ask the reporters for something (the message says what).
    Ask(String),
    /// Uphold the report: the NIK is released (the message is the reason
    /// both the reporters and the holder read).
    Release(String),
    /// Reject the report with a reason the reporters read.
    Reject(String),
    /// Uphold the objection of the holder of a released NIK: the account
    /// is no longer suspended and holds the NIK again; the report is
    /// rejected (the message says why, to both sides).
    Reinstate(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Done,
    /// The case is not (any more) in a status that allows it.
    NotNow,
    /// Reinstating: another account holds the NIK by now.
    NikTaken,
}

/// A staff member's step on an open case.
fn staff_step<'a>(
    staff: &'a str,
    kind: &'a str,
    message: Option<&'a str>,
    to: Option<&'a str>,
    assign: Option<&'a str>,
    now: NaiveDateTime,
) -> Step<'a> {
    Step {
        actor: staff,
        kind,
        party_id: None,
        message,
        from: cases::OPEN,
        to,
        due_at: None,
        assign,
        now,
    }
}

/// Carries out a staff member's decision on an open case, with the mails
/// it owes the citizens, in one transaction. The handler audits it.
pub async fn act(
    ctx: &Ctx<'_>,
    reference: &str,
    staff: &str,
    action: Action,
    now: NaiveDateTime,
) -> Result<Acted, AppError> {
    let Some(detail) = detail(ctx, reference).await? else {
        return Err(AppError::NotFound);
    };
    if !detail.case.row.is_open() {
        return Ok(Acted::NotNow);
    }
    let (keys, settings, staff) = (ctx.keys.clone(), ctx.settings.clone(), staff.to_string());
    let secret = |id: &str| link_token(ctx, id);
    let reporters: Vec<(Party, String)> = detail
        .parties
        .iter()
        .filter(|p| p.role == cases::ROLE_REPORTER)
        .map(|p| (p.clone(), secret(&p.id)))
        .collect();
    let holders: Vec<(Party, String)> = detail
        .parties
        .iter()
        .filter(|p| p.role == cases::ROLE_HOLDER)
        .map(|p| (p.clone(), secret(&p.id)))
        .collect();
    let holder_party = uuid::Uuid::new_v4().to_string();
    let holder_token = secret(&holder_party);
    let case = detail.case;
    let acted = ctx
        .db(move |conn| -> Result<Acted, AppError> {
            // The whole transaction again when SQLite is busy: it reads
            // (the case's key, the holder) before it writes.
            crate::db::retry_busy(|| {
                conn.transaction(|conn| {
                    let mail_parties =
                        |conn: &mut crate::db::DbConn,
                         parties: &[(Party, String)],
                         step: CaseStep,
                         message: Option<&str>| {
                            for (party, token) in parties {
                                let lang = Lang::from_code(&party.lang).unwrap_or_default();
                                let mail = crate::mail::case_mail(
                                    &settings,
                                    lang,
                                    &party.contact.email,
                                    step,
                                    &case.row.reference,
                                    token,
                                    message,
                                    now,
                                )
                                .map_err(AppError::internal)?;
                                crate::db::outbox::insert_mail(conn, &keys, &mail)?;
                            }
                            Ok::<(), AppError>(())
                        };
                    let simple = |kind, message, to, assign| {
                        staff_step(&staff, kind, message, to, assign, now)
                    };
                    // A step with a message to the parties, to status `to`.
                    let decided = |kind, message, to| simple(kind, Some(message), Some(to), None);
                    match &action {
                        Action::Assign => {
                            let to = (case.row.status != cases::STATUS_WAITING)
                                .then_some(cases::STATUS_IN_REVIEW);
                            let step = simple(event::ASSIGNED, None, to, Some(staff.as_str()));
                            if !cases::step(conn, &keys, &case, &step)? {
                                return Ok(Acted::NotNow);
                            }
                            if case.row.status == cases::STATUS_NEW {
                                mail_parties(conn, &reporters, CaseStep::InReview, None)?;
                            }
                        }
                        Action::Ask(message) => {
                            let step =
                                decided(event::WAITING, message.as_str(), cases::STATUS_WAITING);
                            if !cases::step(conn, &keys, &case, &step)? {
                                return Ok(Acted::NotNow);
                            }
                            mail_parties(conn, &reporters, CaseStep::Waiting, Some(message))?;
                        }
                        Action::Reject(message) => {
                            let step =
                                decided(event::REJECTED, message.as_str(), cases::STATUS_REJECTED);
                            if !cases::step(conn, &keys, &case, &step)? {
                                return Ok(Acted::NotNow);
                            }
                            mail_parties(conn, &reporters, CaseStep::Rejected, Some(message))?;
                        }
                        Action::Release(message) => {
                            let hash = crate::domain::link_token::hash_link_token(&holder_token);
                            let step =
                                decided(event::RELEASED, message.as_str(), cases::STATUS_RESOLVED);
                            let released =
                                cases::release(conn, &keys, &case, &step, (&holder_party, &hash));
                            let holder = match released {
                                Ok(holder) => holder,
                                Err(diesel::result::Error::NotFound) => return Ok(Acted::NotNow),
                                Err(e) => return Err(e.into()),
                            };
                            mail_parties(conn, &reporters, CaseStep::Released, Some(message))?;
                            // A release upheld after the holder's objection.
                            mail_parties(
                                conn,
                                &holders,
                                CaseStep::ObjectionRejected,
                                Some(message),
                            )?;
                            if let Some(holder) = holder {
                                let lang = Lang::from_code(&holder.lang).unwrap_or_default();
                                let mail = crate::mail::case_mail(
                                    &settings,
                                    lang,
                                    &holder.email,
                                    CaseStep::HolderSuspended,
                                    &case.row.reference,
                                    &holder_token,
                                    Some(message),
                                    now,
                                )
                                .map_err(AppError::internal)?;
                                crate::db::outbox::insert_mail(conn, &keys, &mail)?;
                            }
                        }
                        Action::Reinstate(message) => {
                            let step = decided(
                                event::REINSTATED,
                                message.as_str(),
                                cases::STATUS_REJECTED,
                            );
                            match cases::reinstate(conn, &keys, &case, &step)? {
                                cases::Reinstated::Done => {}
                                cases::Reinstated::NotNow => return Ok(Acted::NotNow),
                                cases::Reinstated::NikTaken => return Ok(Acted::NikTaken),
                            }
                            mail_parties(conn, &holders, CaseStep::Reinstated, Some(message))?;
                            mail_parties(conn, &reporters, CaseStep::Rejected, Some(message))?;
                        }
                    }
                    Ok(Acted::Done)
                })
            })
        })
        .await?;
    if acted == Acted::Done {
        ctx.mail_queued();
        tracing::info!(case = %reference, "case step by staff");
    }
    Ok(acted)
}

/// Deletes cases closed longer ago than the retention, shredding their
/// data keys; how many.
pub async fn purge(ctx: &Ctx<'_>, now: NaiveDateTime) -> Result<usize, AppError> {
    let cutoff = now - Duration::days(i64::from(ctx.settings.case_retention_days));
    ctx.db(move |conn| cases::purge(conn, cutoff)).await
}
