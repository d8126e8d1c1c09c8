//! "Someone else used my NIK": reports tracked as cases (`nik_cases`),
//! who takes part in them (`nik_case_parties`: each reporter, and the
//! holder of the NIK once it is released), the reporters' photos
//! (`nik_case_photos`) and every step (`nik_case_events`).
//!
//! Everything a citizen gave (the NIK, contact, statement, replies, the
//! photos) is sealed under the case's own data key, bound to
//! `<table>.<column>:<row>`; the `nik` column holds the NIK's blind index.
//! One case per NIK while it is open: `open_nik` (UNIQUE) holds that index
//! until the case closes, so two reports at once cannot open two cases.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::{Deserialize, Serialize};

use super::DbConn;
use crate::db::accounts::Account;
use crate::domain::sealed::{self, DataKey, KeyRing};
use crate::schema::{
    accounts, data_keys, nik_case_events, nik_case_parties, nik_case_photos, nik_cases,
};

pub const STATUS_NEW: &str = "new";
pub const STATUS_IN_REVIEW: &str = "in_review";
pub const STATUS_WAITING: &str = "waiting";
pub const STATUS_RESOLVED: &str = "resolved";
pub const STATUS_REJECTED: &str = "rejected";
/// Statuses of a case staff still have to answer.
pub const OPEN: &[&str] = &[STATUS_NEW, STATUS_IN_REVIEW, STATUS_WAITING];

pub const ROLE_REPORTER: &str = "reporter";
pub const ROLE_HOLDER: &str = "holder";

/// Event kinds; a staff member's events name them in `actor`.
pub mod event {
    pub const REPORTED: &str = "reported";
    pub const JOINED: &str = "joined";
    pub const ASSIGNED: &str = "assigned";
    pub const IN_REVIEW: &str = "in_review";
    pub const WAITING: &str = "waiting";
    pub const REPLY: &str = "reply";
    pub const RELEASED: &str = "released";
    pub const REJECTED: &str = "rejected";
    pub const OBJECTED: &str = "objected";
    pub const REINSTATED: &str = "reinstated";
}

pub const PHOTO_KTP: &str = "ktp";
pub const PHOTO_SELFIE: &str = "selfie";

/// What a party gave to be reached by and to explain (sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: String,
    pub phone: String,
    pub statement: String,
}

#[derive(Debug, Clone, Queryable)]
pub struct CaseRow {
    pub id: String,
    pub reference: String,
    pub nik_index: String,
    pub open_nik: Option<String>,
    pub status: String,
    pub sealed: Vec<u8>,
    pub data_key_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub assigned_to: Option<String>,
    pub closed_at: Option<NaiveDateTime>,
    pub holder_account_id: Option<String>,
}

impl CaseRow {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// A case with its NIK opened.
#[derive(Debug, Clone)]
pub struct Case {
    pub row: CaseRow,
    pub nik: String,
}

#[derive(Debug, Clone)]
pub struct Party {
    pub id: String,
    pub role: String,
    pub lang: String,
    pub created_at: NaiveDateTime,
    pub failure_reference: Option<String>,
    pub contact: Contact,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub at: NaiveDateTime,
    /// `reporter`, `holder`, or the staff member's address.
    pub actor: String,
    pub kind: String,
    pub party_id: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Queryable)]
pub struct PhotoInfo {
    pub id: String,
    pub party_id: String,
    pub kind: String,
    pub size_bytes: i64,
}

/// A photo received with a report, normalised, not stored yet.
pub struct NewPhoto<'a> {
    pub kind: &'static str,
    pub content_type: &'a str,
    pub data: &'a [u8],
}

/// A report to file: it opens a case for the NIK, or joins the open one.
pub struct NewReport<'a> {
    pub nik: &'a str,
    pub contact: &'a Contact,
    pub lang: &'a str,
    /// The reporter's party id, and the SHA-256 of its status-page token
    /// (the service derives the token from the id, so every later mail
    /// can carry the link; `services/cases.rs`).
    pub party_id: &'a str,
    pub token_hash: &'a str,
    pub photos: Vec<NewPhoto<'a>>,
    /// The reference a new case gets.
    pub case_reference: &'a str,
    /// The failure-log reference of this report when it joins a case
    /// (a new case's report is logged under the case's reference).
    pub join_reference: &'a str,
    pub due_at: NaiveDateTime,
    pub now: NaiveDateTime,
}

/// What filing a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub reference: String,
    pub joined: bool,
    /// The failure-log reference of this report.
    pub failure_reference: String,
}

fn aad(table: &str, column: &str, row: &str) -> String {
    sealed::aad(table, column, row)
}

fn key_of(conn: &mut DbConn, ring: &KeyRing, key_id: &str) -> QueryResult<DataKey> {
    super::identity::data_key(conn, ring, key_id)
}

fn unreadable(e: sealed::SealError) -> DieselError {
    tracing::error!(error = %e, "a sealed case value does not open");
    DieselError::DeserializationError(Box::new(e))
}

fn open_text(key: &DataKey, aad: &str, stored: &[u8]) -> QueryResult<String> {
    let plain = key.open(aad, stored).map_err(unreadable)?;
    String::from_utf8(plain).map_err(|_| unreadable(sealed::SealError::Malformed))
}

/// Files a report, in one transaction: a new case (with its data key), or
/// the open case of the same NIK joined; the reporter's contact, photos
/// and a first event; then `also` (the mail that tells the reporter) in
/// the same transaction. Two reports at once for one NIK: the second meets
/// the first's `open_nik`, is tried again, and joins it.
pub fn file_report(
    conn: &mut DbConn,
    ring: &KeyRing,
    report: &NewReport<'_>,
    also: impl Fn(&mut DbConn, &Filed) -> QueryResult<()>,
) -> QueryResult<Filed> {
    let index = super::identity::nik_index(ring, report.nik);
    let mut tries = 0;
    loop {
        tries += 1;
        let filed = super::retry_busy(|| {
            conn.transaction(|conn| {
                let filed = file_once(conn, ring, report, &index)?;
                also(conn, &filed)?;
                Ok(filed)
            })
        });
        match filed {
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) if tries < 3 => {
                continue;
            }
            other => return other,
        }
    }
}

fn file_once(
    conn: &mut DbConn,
    ring: &KeyRing,
    report: &NewReport<'_>,
    index: &str,
) -> QueryResult<Filed> {
    // A write first: on SQLite the transaction takes the write lock now
    // (waiting its turn on the busy timeout) instead of failing when a
    // read lock must be upgraded while another report is written.
    diesel::update(
        nik_cases::table
            .filter(nik_cases::nik.eq(index))
            .filter(nik_cases::closed_at.is_null()),
    )
    .set(nik_cases::updated_at.eq(report.now))
    .execute(conn)?;
    let open: Option<CaseRow> = nik_cases::table
        .filter(nik_cases::nik.eq(index))
        .filter(nik_cases::closed_at.is_null())
        .order(nik_cases::created_at.asc())
        .first(conn)
        .optional()?;
    let (case_id, reference, key, joined) = match open {
        Some(case) => {
            let key = key_of(conn, ring, &case.data_key_id)?;
            (case.id, case.reference, key, true)
        }
        None => {
            let (wrapped, key) = super::identity::new_key(ring)?;
            super::keys::insert(conn, &wrapped, report.now)?;
            let id = uuid::Uuid::new_v4().to_string();
            diesel::insert_into(nik_cases::table)
                .values((
                    nik_cases::id.eq(&id),
                    nik_cases::reference.eq(report.case_reference),
                    nik_cases::nik.eq(index),
                    nik_cases::open_nik.eq(index),
                    nik_cases::status.eq(STATUS_NEW),
                    nik_cases::sealed
                        .eq(key.seal(&aad("nik_cases", "nik", &id), report.nik.as_bytes())),
                    nik_cases::data_key_id.eq(&wrapped.id),
                    nik_cases::created_at.eq(report.now),
                    nik_cases::updated_at.eq(report.now),
                    nik_cases::due_at.eq(report.due_at),
                ))
                .execute(conn)?;
            (id, report.case_reference.to_string(), key, false)
        }
    };
    let failure_reference = if joined {
        report.join_reference.to_string()
    } else {
        reference.clone()
    };
    let party_id = report.party_id;
    insert_party(
        conn,
        &key,
        report.party_id,
        &case_id,
        ROLE_REPORTER,
        report.token_hash,
        report.contact,
        report.lang,
        Some(&failure_reference),
        report.now,
    )?;
    for photo in &report.photos {
        let id = uuid::Uuid::new_v4().to_string();
        diesel::insert_into(nik_case_photos::table)
            .values((
                nik_case_photos::id.eq(&id),
                nik_case_photos::case_id.eq(&case_id),
                nik_case_photos::party_id.eq(party_id),
                nik_case_photos::kind.eq(photo.kind),
                nik_case_photos::content_type.eq(photo.content_type),
                nik_case_photos::size_bytes.eq(photo.data.len() as i64),
                nik_case_photos::data
                    .eq(key.seal(&aad("nik_case_photos", "data", &id), photo.data)),
                nik_case_photos::created_at.eq(report.now),
            ))
            .execute(conn)?;
    }
    let kind = if joined {
        event::JOINED
    } else {
        event::REPORTED
    };
    insert_event(
        conn,
        &key,
        &case_id,
        ROLE_REPORTER,
        kind,
        Some(party_id),
        None,
        report.now,
    )?;
    Ok(Filed {
        reference,
        joined,
        failure_reference,
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_party(
    conn: &mut DbConn,
    key: &DataKey,
    id: &str,
    case_id: &str,
    role: &str,
    token_hash: &str,
    contact: &Contact,
    lang: &str,
    failure_reference: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let plain = serde_json::to_vec(contact).expect("a contact serialises");
    diesel::insert_into(nik_case_parties::table)
        .values((
            nik_case_parties::id.eq(id),
            nik_case_parties::case_id.eq(case_id),
            nik_case_parties::role.eq(role),
            nik_case_parties::token_hash.eq(token_hash),
            nik_case_parties::sealed.eq(key.seal(&aad("nik_case_parties", "contact", id), &plain)),
            nik_case_parties::lang.eq(lang),
            nik_case_parties::created_at.eq(now),
            nik_case_parties::failure_reference.eq(failure_reference),
        ))
        .execute(conn)
        .map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn insert_event(
    conn: &mut DbConn,
    key: &DataKey,
    case_id: &str,
    actor: &str,
    kind: &str,
    party_id: Option<&str>,
    message: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let message = message.map(|m| key.seal(&aad("nik_case_events", "message", &id), m.as_bytes()));
    diesel::insert_into(nik_case_events::table)
        .values((
            nik_case_events::id.eq(&id),
            nik_case_events::case_id.eq(case_id),
            nik_case_events::at.eq(now),
            nik_case_events::actor.eq(actor),
            nik_case_events::kind.eq(kind),
            nik_case_events::party_id.eq(party_id),
            nik_case_events::message.eq(message),
        ))
        .execute(conn)
        .map(|_| ())
}

fn opened(conn: &mut DbConn, ring: &KeyRing, row: CaseRow) -> QueryResult<Case> {
    let key = key_of(conn, ring, &row.data_key_id)?;
    let nik = open_text(&key, &aad("nik_cases", "nik", &row.id), &row.sealed)?;
    Ok(Case { row, nik })
}

pub fn find_by_reference(
    conn: &mut DbConn,
    ring: &KeyRing,
    reference: &str,
) -> QueryResult<Option<Case>> {
    let row: Option<CaseRow> = nik_cases::table
        .filter(nik_cases::reference.eq(reference))
        .first(conn)
        .optional()?;
    row.map(|row| opened(conn, ring, row)).transpose()
}

/// A row of `nik_case_parties`, as stored.
#[derive(Queryable)]
struct PartyRow {
    id: String,
    case_id: String,
    role: String,
    _token_hash: String,
    sealed: Vec<u8>,
    lang: String,
    created_at: NaiveDateTime,
    failure_reference: Option<String>,
}

fn open_party(key: &DataKey, row: PartyRow) -> QueryResult<Party> {
    let PartyRow {
        id,
        role,
        sealed: stored,
        lang,
        created_at,
        failure_reference,
        ..
    } = row;
    let plain = key
        .open(&aad("nik_case_parties", "contact", &id), &stored)
        .map_err(unreadable)?;
    let contact =
        serde_json::from_slice(&plain).map_err(|_| unreadable(sealed::SealError::Malformed))?;
    Ok(Party {
        id,
        role,
        lang,
        created_at,
        failure_reference,
        contact,
    })
}

/// The case and party a status-page token belongs to.
pub fn find_by_token(
    conn: &mut DbConn,
    ring: &KeyRing,
    token_hash: &str,
) -> QueryResult<Option<(Case, Party)>> {
    let found: Option<PartyRow> = nik_case_parties::table
        .filter(nik_case_parties::token_hash.eq(token_hash))
        .first(conn)
        .optional()?;
    let Some(row) = found else {
        return Ok(None);
    };
    let case_row: CaseRow = nik_cases::table.find(&row.case_id).first(conn)?;
    let case = opened(conn, ring, case_row)?;
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    Ok(Some((case, open_party(&key, row)?)))
}

/// The reference of the case a failure-log row (a report) belongs to.
pub fn reference_of_failure(conn: &mut DbConn, failure: &str) -> QueryResult<Option<String>> {
    nik_case_parties::table
        .inner_join(nik_cases::table.on(nik_cases::id.eq(nik_case_parties::case_id)))
        .filter(nik_case_parties::failure_reference.eq(failure))
        .select(nik_cases::reference)
        .first(conn)
        .optional()
}

pub fn parties(conn: &mut DbConn, ring: &KeyRing, case: &Case) -> QueryResult<Vec<Party>> {
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    let rows: Vec<PartyRow> = nik_case_parties::table
        .filter(nik_case_parties::case_id.eq(&case.row.id))
        .order(nik_case_parties::created_at.asc())
        .load(conn)?;
    rows.into_iter().map(|row| open_party(&key, row)).collect()
}

type EventColumns = (
    String,
    NaiveDateTime,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
);

pub fn events(conn: &mut DbConn, ring: &KeyRing, case: &Case) -> QueryResult<Vec<Event>> {
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    let rows: Vec<EventColumns> = nik_case_events::table
        .filter(nik_case_events::case_id.eq(&case.row.id))
        .order((nik_case_events::at.asc(), nik_case_events::id.asc()))
        .select((
            nik_case_events::id,
            nik_case_events::at,
            nik_case_events::actor,
            nik_case_events::kind,
            nik_case_events::party_id,
            nik_case_events::message,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, at, actor, kind, party_id, message)| {
            let message = message
                .map(|m| open_text(&key, &aad("nik_case_events", "message", &id), &m))
                .transpose()?;
            Ok(Event {
                at,
                actor,
                kind,
                party_id,
                message,
            })
        })
        .collect()
}

pub fn photos(conn: &mut DbConn, case_id: &str) -> QueryResult<Vec<PhotoInfo>> {
    nik_case_photos::table
        .filter(nik_case_photos::case_id.eq(case_id))
        .order(nik_case_photos::created_at.asc())
        .select((
            nik_case_photos::id,
            nik_case_photos::party_id,
            nik_case_photos::kind,
            nik_case_photos::size_bytes,
        ))
        .load(conn)
}

/// A photo of the case, opened: its content type and bytes.
pub fn open_photo(
    conn: &mut DbConn,
    ring: &KeyRing,
    case: &Case,
    photo_id: &str,
) -> QueryResult<Option<(String, Vec<u8>)>> {
    let found: Option<(String, Vec<u8>)> = nik_case_photos::table
        .find(photo_id)
        .filter(nik_case_photos::case_id.eq(&case.row.id))
        .select((nik_case_photos::content_type, nik_case_photos::data))
        .first(conn)
        .optional()?;
    let Some((content_type, stored)) = found else {
        return Ok(None);
    };
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    let data = key
        .open(&aad("nik_case_photos", "data", photo_id), &stored)
        .map_err(unreadable)?;
    Ok(Some((content_type, data)))
}

/// Which cases the queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Open,
    Closed,
}

/// The queue: open cases by their answer time (the overdue ones first),
/// or closed ones newest first; with how many reports each has.
pub fn queue(
    conn: &mut DbConn,
    ring: &KeyRing,
    which: Queue,
    limit: i64,
) -> QueryResult<Vec<(Case, i64)>> {
    let query = nik_cases::table.into_boxed();
    let rows: Vec<CaseRow> = match which {
        Queue::Open => query
            .filter(nik_cases::closed_at.is_null())
            .order((nik_cases::due_at.asc(), nik_cases::id.asc())),
        Queue::Closed => query
            .filter(nik_cases::closed_at.is_not_null())
            .order(nik_cases::closed_at.desc()),
    }
    .limit(limit)
    .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let reports: i64 = nik_case_parties::table
                .filter(nik_case_parties::case_id.eq(&row.id))
                .filter(nik_case_parties::role.eq(ROLE_REPORTER))
                .count()
                .get_result(conn)?;
            Ok((opened(conn, ring, row)?, reports))
        })
        .collect()
}

/// A step of a case: its event (with a sealed message), and a status
/// change when `to` is given, made only from one of `from` (so two staff
/// members acting at once cannot both move it). `due_at` restarts the
/// answer clock. False when the case was not in one of `from`.
pub struct Step<'a> {
    pub actor: &'a str,
    pub kind: &'a str,
    pub party_id: Option<&'a str>,
    pub message: Option<&'a str>,
    pub from: &'a [&'a str],
    pub to: Option<&'a str>,
    pub due_at: Option<NaiveDateTime>,
    pub assign: Option<&'a str>,
    pub now: NaiveDateTime,
}

pub fn step(conn: &mut DbConn, ring: &KeyRing, case: &Case, step: &Step<'_>) -> QueryResult<bool> {
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    super::retry_busy(|| conn.transaction(|conn| take_step(conn, &key, case, step)))
}

/// `step` inside a transaction the caller holds (the write comes first:
/// SQLite takes its write lock here).
fn take_step(conn: &mut DbConn, key: &DataKey, case: &Case, step: &Step<'_>) -> QueryResult<bool> {
    let target = nik_cases::table
        .find(&case.row.id)
        .filter(nik_cases::status.eq_any(step.from));
    let closing = matches!(step.to, Some(STATUS_RESOLVED | STATUS_REJECTED));
    let reopening = step.to.is_some() && !closing && !case.row.is_open();
    let changed = diesel::update(target)
        .set((
            nik_cases::updated_at.eq(step.now),
            step.to.map(|to| nik_cases::status.eq(to)),
            step.due_at.map(|due| nik_cases::due_at.eq(due)),
            step.assign.map(|who| nik_cases::assigned_to.eq(who)),
            closing.then(|| nik_cases::closed_at.eq(Some(step.now))),
            closing.then(|| nik_cases::open_nik.eq(None::<String>)),
            reopening.then(|| nik_cases::closed_at.eq(None::<NaiveDateTime>)),
        ))
        .execute(conn)?;
    if changed != 1 {
        return Ok(false);
    }
    insert_event(
        conn,
        key,
        &case.row.id,
        step.actor,
        step.kind,
        step.party_id,
        step.message,
        step.now,
    )?;
    Ok(true)
}

/// Releases the NIK of an open case to its reporters, in one transaction:
/// the case is resolved by `step`; the account that holds the NIK (if one
/// does) is suspended, its `nik` column no longer holds the NIK's index
/// (so the NIK registers again at once), its sessions end, and it joins
/// the case as the holder (party `holder_party`: its id and token hash)
/// with its own status-page link, so its owner can object. The suspended
/// account, or `None` when no account held the NIK; `Err(NotFound)` when
/// the case was no longer open.
pub fn release(
    conn: &mut DbConn,
    ring: &KeyRing,
    case: &Case,
    step: &Step<'_>,
    holder_party: (&str, &str),
) -> QueryResult<Option<Account>> {
    let (holder_party_id, holder_token_hash) = holder_party;
    let now = step.now;
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    let index = case.row.nik_index.clone();
    super::retry_busy(|| {
        conn.transaction(|conn| {
            if !take_step(conn, &key, case, step)? {
                return Err(DieselError::NotFound);
            }
            // A case reopened by the holder's objection was released
            // before: its holder is suspended already, and the NIK may by
            // now belong to the reporter's new account, which is not
            // touched.
            let holder: Option<Account> = if case.row.holder_account_id.is_some() {
                None
            } else {
                accounts::table
                    .filter(accounts::nik.eq_any([index.clone(), case.nik.clone()]))
                    .first(conn)
                    .optional()?
            };
            if let Some(holder) = &holder {
                diesel::update(nik_cases::table.find(&case.row.id))
                    .set(nik_cases::holder_account_id.eq(&holder.id))
                    .execute(conn)?;
            }
            let Some(holder) = holder else {
                return Ok(None);
            };
            diesel::update(accounts::table.find(&holder.id))
                .set((
                    accounts::nik.eq(format!("released:{}", holder.id)),
                    accounts::suspended_at.eq(Some(now)),
                    accounts::suspended_case.eq(Some(&case.row.reference)),
                    accounts::session_epoch.eq(accounts::session_epoch + 1),
                ))
                .execute(conn)?;
            super::sessions::revoke_all(conn, super::sessions::KIND_CITIZEN, &holder.id, now)?;
            let holder = holder.opened(conn, ring)?;
            let contact = Contact {
                email: holder.email.clone(),
                phone: holder.phone.clone(),
                statement: String::new(),
            };
            insert_party(
                conn,
                &key,
                holder_party_id,
                &case.row.id,
                ROLE_HOLDER,
                holder_token_hash,
                &contact,
                &holder.lang,
                None,
                now,
            )?;
            Ok(Some(holder))
        })
    })
}

/// What upholding the holder's objection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reinstated {
    Done,
    /// The case is not an open one with a suspended holder.
    NotNow,
    /// Another account holds the NIK by now (the reporter registered it):
    /// nothing changed; staff settle it with both.
    NikTaken,
}

/// Upholds the objection of the holder of a released NIK, in one
/// transaction: the case is closed as rejected (`step`), the holding
/// account is no longer suspended and holds the NIK's index again, unless
/// another account took the NIK meanwhile.
pub fn reinstate(
    conn: &mut DbConn,
    ring: &KeyRing,
    case: &Case,
    step: &Step<'_>,
) -> QueryResult<Reinstated> {
    let Some(holder_id) = case.row.holder_account_id.clone() else {
        return Ok(Reinstated::NotNow);
    };
    let key = key_of(conn, ring, &case.row.data_key_id)?;
    let index = case.row.nik_index.clone();
    super::retry_busy(|| {
        conn.transaction(|conn| {
            if !take_step(conn, &key, case, step)? {
                return Ok(Reinstated::NotNow);
            }
            let taken: i64 = accounts::table
                .filter(accounts::nik.eq_any([index.clone(), case.nik.clone()]))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Err(DieselError::RollbackTransaction);
            }
            diesel::update(accounts::table.find(&holder_id))
                .set((
                    accounts::nik.eq(&index),
                    accounts::suspended_at.eq(None::<NaiveDateTime>),
                    accounts::suspended_case.eq(None::<String>),
                ))
                .execute(conn)?;
            Ok(Reinstated::Done)
        })
        .or_else(|e| match e {
            DieselError::RollbackTransaction => Ok(Reinstated::NikTaken),
            e => Err(e),
        })
    })
}

/// Deletes cases closed before `cutoff` with their data keys: their
/// contents are shredded. How many.
pub fn purge(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    let old: Vec<(String, String)> = nik_cases::table
        .filter(nik_cases::closed_at.lt(cutoff))
        .select((nik_cases::id, nik_cases::data_key_id))
        .load(conn)?;
    for (id, key) in &old {
        conn.transaction(|conn| {
            diesel::delete(nik_case_events::table.filter(nik_case_events::case_id.eq(id)))
                .execute(conn)?;
            diesel::delete(nik_case_photos::table.filter(nik_case_photos::case_id.eq(id)))
                .execute(conn)?;
            diesel::delete(nik_case_parties::table.filter(nik_case_parties::case_id.eq(id)))
                .execute(conn)?;
            diesel::delete(nik_cases::table.find(id)).execute(conn)?;
            diesel::delete(data_keys::table.find(key)).execute(conn)
        })?;
    }
    Ok(old.len())
}
