//! The citizen's own data (UU 27/2022): what the portal holds about an
//! account beyond the account row (its mails, failure-log rows, and the
//! staff's views and actions on them: the processing record), and the
//! deletion of an account with everything that identifies its owner.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConn;
use super::accounts::Account;
use crate::domain::sealed::KeyRing;
use crate::schema::{
    account_deletions, account_requests, account_tokens, accounts, data_keys, email_changes,
    failure_notes, failures, ktp_uploads, mail_events, mail_outbox, nik_cases,
    registration_submissions, registrations, sessions, staff_audit, undeliverable_addresses,
};

/// A mail sent to the account, as its owner may see it (never its links).
#[derive(Debug, Clone, Queryable)]
pub struct MailRecord {
    pub kind: String,
    pub created_at: NaiveDateTime,
    pub status: String,
    pub sent_at: Option<NaiveDateTime>,
    pub delivery: Option<String>,
}

/// A failure-log row about the account's address or NIK.
#[derive(Debug, Clone, Queryable)]
pub struct FailureRecord {
    pub reference: String,
    pub occurred_at: NaiveDateTime,
    pub reason: String,
    pub fields: String,
    pub path: String,
}

/// A staff member's view or action on the account's records.
#[derive(Debug, Clone)]
pub struct Processing {
    pub at: NaiveDateTime,
    pub action: String,
    /// The record it was about (a failure or case reference).
    pub record: String,
    /// The reason the staff member gave, where one was asked for.
    pub reason: Option<String>,
}

/// The references of the failure-log rows about the account: under its
/// address (by the blind index, or in clear in rows an earlier version
/// wrote) or its NIK (by the log's keyed hash).
fn failure_references(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
) -> QueryResult<Vec<String>> {
    let mut refs: Vec<String> = failures::table
        .filter(failures::email.eq_any(super::identity::email_keys(ring, &account.email)))
        .select(failures::reference)
        .load(conn)?;
    if let Some(hash) = &account.nik_hash {
        refs.extend(
            failures::table
                .filter(failures::nik_hash.eq(hash))
                .select(failures::reference)
                .load::<String>(conn)?,
        );
    }
    refs.sort();
    refs.dedup();
    Ok(refs)
}

pub fn failures_of(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
) -> QueryResult<Vec<FailureRecord>> {
    let refs = failure_references(conn, ring, account)?;
    failures::table
        .filter(failures::reference.eq_any(&refs))
        .order(failures::occurred_at.desc())
        .select((
            failures::reference,
            failures::occurred_at,
            failures::reason,
            failures::fields,
            failures::path,
        ))
        .load(conn)
}

/// Staff audit actions that are about a citizen's records (not sign-ins,
/// exports of the whole log or queue views).
const ABOUT_A_RECORD: &[&str] = &[
    "view_failure",
    "view_ktp_photo",
    "failure_note",
    "failure_resolve",
    "failure_resend",
    "failure_reveal",
    "view_case",
    "view_case_photo",
    "case_assign",
    "case_ask",
    "case_release",
    "case_reject",
    "case_reinstate",
    "view_request",
    "view_request_photo",
    "request_approve",
    "request_reject",
];

/// The processing record: every staff view or action on the account's
/// failure-log rows, its KTP photo, its requests and the cases about its NIK, newest
/// first (at most `limit`).
pub fn processing_record(
    conn: &mut DbConn,
    ring: &KeyRing,
    account: &Account,
    limit: i64,
) -> QueryResult<Vec<Processing>> {
    let mut records = failure_references(conn, ring, account)?;
    records.extend(
        nik_cases::table
            .filter(
                nik_cases::nik
                    .eq(super::identity::nik_index(ring, &account.nik))
                    .or(nik_cases::holder_account_id.eq(&account.id)),
            )
            .select(nik_cases::reference)
            .load::<String>(conn)?,
    );
    records.extend(
        account_requests::table
            .filter(account_requests::account_id.eq(&account.id))
            .select(account_requests::id)
            .load::<String>(conn)?,
    );
    let mut found = Vec::new();
    for record in &records {
        let rows: Vec<(NaiveDateTime, String, String)> = staff_audit::table
            .filter(staff_audit::action.eq_any(ABOUT_A_RECORD))
            .filter(
                staff_audit::target
                    .eq(record)
                    .or(staff_audit::target.like(format!("{record} %")))
                    .or(staff_audit::target.like(format!("{record}:%"))),
            )
            .order(staff_audit::at.desc())
            .limit(limit)
            .select((staff_audit::at, staff_audit::action, staff_audit::target))
            .load(conn)?;
        found.extend(rows.into_iter().map(|(at, action, target)| {
            Processing {
                at,
                reason: target
                    .split_once(": ")
                    .map(|(_, reason)| reason.to_string()),
                record: record.clone(),
                action,
            }
        }));
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.at));
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(found)
}

/// The mails sent to the account, and to the registration it was made
/// from (its verification links).
pub fn mails(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<MailRecord>> {
    let made_from = registrations::table
        .filter(registrations::account_id.eq(account_id))
        .select(registrations::id);
    mail_outbox::table
        .filter(
            mail_outbox::account_id
                .eq(account_id)
                .or(mail_outbox::registration_id.eq_any(made_from.nullable())),
        )
        .order(mail_outbox::created_at.desc())
        .select((
            mail_outbox::kind,
            mail_outbox::created_at,
            mail_outbox::status,
            mail_outbox::sent_at,
            mail_outbox::delivery,
        ))
        .load(conn)
}

/// Asks for the account's deletion on `due` (false: already asked).
pub fn request_deletion(
    conn: &mut DbConn,
    account_id: &str,
    due: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        accounts::table
            .find(account_id)
            .filter(accounts::deletion_due_at.is_null()),
    )
    .set(accounts::deletion_due_at.eq(Some(due)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Cancels a pending deletion (false: none was pending).
pub fn cancel_deletion(conn: &mut DbConn, account_id: &str) -> QueryResult<bool> {
    let changed = diesel::update(
        accounts::table
            .find(account_id)
            .filter(accounts::deletion_due_at.is_not_null()),
    )
    .set(accounts::deletion_due_at.eq(None::<NaiveDateTime>))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Accounts whose deletion is due.
pub fn due_deletions(
    conn: &mut DbConn,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    accounts::table
        .filter(accounts::deletion_due_at.le(now))
        .select(accounts::id)
        .limit(limit)
        .load(conn)
}

/// Carries out a due deletion, in one transaction: the account, its KTP
/// photo, sessions, tokens, mails (with their delivery events), the
/// registrations it came from, and every data key of them are deleted
/// (what they sealed is unreadable from then on, in backups too once the
/// KEK version is retired); its failure-log rows keep their reason, time
/// and path but lose the address, NIK, client address and user agent (and
/// staff notes on them); its address is no longer marked undeliverable.
/// What stays: one `account_deletions` row (the account id and the two
/// dates) and the staff audit (who looked at which reference, when).
/// False when the deletion was cancelled meanwhile.
pub fn delete_account(
    conn: &mut DbConn,
    ring: &KeyRing,
    account_id: &str,
    requested_at: impl Fn(NaiveDateTime) -> NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    super::retry_busy(|| {
        conn.transaction(|conn| {
            // A write first (SQLite takes its write lock here, so two
            // instances' workers take turns); a deletion cancelled
            // meanwhile is left alone.
            let still_due = diesel::update(
                accounts::table
                    .find(account_id)
                    .filter(accounts::deletion_due_at.le(now)),
            )
            .set(accounts::deletion_due_at.eq(accounts::deletion_due_at))
            .execute(conn)?;
            let due: Option<NaiveDateTime> = accounts::table
                .find(account_id)
                .select(accounts::deletion_due_at)
                .first::<Option<NaiveDateTime>>(conn)
                .optional()?
                .flatten();
            let (Some(due), 1) = (due, still_due) else {
                return Ok(false);
            };
            let account: Account = accounts::table.find(account_id).first(conn)?;
            let account = account.opened(conn, ring)?;
            let mut keys: Vec<String> = account.data_key_id.iter().cloned().collect();
            // The references first: the rows are found by the address and
            // NIK this account still names.
            let refs = failure_references(conn, ring, &account)?;

            diesel::delete(account_tokens::table.filter(account_tokens::account_id.eq(account_id)))
                .execute(conn)?;
            diesel::delete(email_changes::table.filter(email_changes::account_id.eq(account_id)))
                .execute(conn)?;
            // Requests keep their dates (when asked, when answered) and
            // lose their contents.
            diesel::update(
                account_requests::table.filter(account_requests::account_id.eq(account_id)),
            )
            .set((
                account_requests::sealed.eq(None::<Vec<u8>>),
                account_requests::photo.eq(None::<Vec<u8>>),
            ))
            .execute(conn)?;
            diesel::delete(
                sessions::table
                    .filter(sessions::kind.eq(super::sessions::KIND_CITIZEN))
                    .filter(sessions::subject_id.eq(account_id)),
            )
            .execute(conn)?;
            let made_from: Vec<(String, Option<String>, String)> = registrations::table
                .filter(registrations::account_id.eq(account_id))
                .select((
                    registrations::id,
                    registrations::data_key_id,
                    registrations::ktp_upload_id,
                ))
                .load(conn)?;
            let mut uploads = vec![account.ktp_upload_id.clone()];
            let mut registration_ids = Vec::new();
            for (id, key, upload) in made_from {
                keys.extend(key);
                uploads.push(upload);
                registration_ids.push(id);
            }
            let mails: Vec<(String, Option<String>)> = mail_outbox::table
                .filter(
                    mail_outbox::account_id
                        .eq(account_id)
                        .or(mail_outbox::registration_id.eq_any(&registration_ids)),
                )
                .select((mail_outbox::id, mail_outbox::data_key_id))
                .load(conn)?;
            let mail_ids: Vec<String> = mails.iter().map(|(id, _)| id.clone()).collect();
            keys.extend(mails.into_iter().filter_map(|(_, key)| key));
            diesel::delete(mail_events::table.filter(mail_events::mail_id.eq_any(&mail_ids)))
                .execute(conn)?;
            diesel::delete(mail_outbox::table.filter(mail_outbox::id.eq_any(&mail_ids)))
                .execute(conn)?;
            diesel::delete(
                registration_submissions::table.filter(
                    registration_submissions::account_id
                        .eq(account_id)
                        .or(registration_submissions::registration_id.eq_any(&registration_ids)),
                ),
            )
            .execute(conn)?;
            diesel::delete(
                registrations::table.filter(registrations::id.eq_any(&registration_ids)),
            )
            .execute(conn)?;
            diesel::delete(accounts::table.find(account_id)).execute(conn)?;
            // Photos no other registration still uses.
            let still_used: Vec<String> = registrations::table
                .filter(registrations::ktp_upload_id.eq_any(&uploads))
                .select(registrations::ktp_upload_id)
                .load(conn)?;
            uploads.retain(|u| !still_used.contains(u));
            keys.extend(
                ktp_uploads::table
                    .filter(ktp_uploads::id.eq_any(&uploads))
                    .select(ktp_uploads::data_key_id)
                    .load::<Option<String>>(conn)?
                    .into_iter()
                    .flatten(),
            );
            diesel::delete(ktp_uploads::table.filter(ktp_uploads::id.eq_any(&uploads)))
                .execute(conn)?;
            diesel::delete(data_keys::table.filter(data_keys::id.eq_any(&keys))).execute(conn)?;
            diesel::update(failures::table.filter(failures::reference.eq_any(&refs)))
                .set((
                    failures::email.eq(None::<String>),
                    failures::email_sealed.eq(None::<Vec<u8>>),
                    failures::data_key_id.eq(None::<String>),
                    failures::email_shape.eq(None::<String>),
                    failures::nik_masked.eq(None::<String>),
                    failures::nik_hash.eq(None::<String>),
                    failures::client_ip.eq(None::<String>),
                    failures::user_agent.eq(None::<String>),
                ))
                .execute(conn)?;
            diesel::delete(failure_notes::table.filter(failure_notes::reference.eq_any(&refs)))
                .execute(conn)?;
            diesel::delete(
                undeliverable_addresses::table.filter(
                    undeliverable_addresses::address
                        .eq(super::identity::email_index(ring, &account.email)),
                ),
            )
            .execute(conn)?;
            diesel::insert_into(account_deletions::table)
                .values((
                    account_deletions::account_id.eq(account_id),
                    account_deletions::requested_at.eq(requested_at(due)),
                    account_deletions::deleted_at.eq(now),
                ))
                .execute(conn)?;
            Ok(true)
        })
    })
}

/// Accounts waiting for their deletion: (address, due), soonest first.
pub fn pending_deletions(
    conn: &mut DbConn,
    ring: &KeyRing,
    limit: i64,
) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    let waiting: Vec<Account> = accounts::table
        .filter(accounts::deletion_due_at.is_not_null())
        .order(accounts::deletion_due_at.asc())
        .limit(limit)
        .load(conn)?;
    waiting
        .into_iter()
        .map(|a| {
            let a = a.opened(conn, ring)?;
            Ok((a.email, a.deletion_due_at.unwrap_or_default()))
        })
        .collect()
}

/// Deletions carried out: (requested, deleted), newest first.
pub fn deletions_done(
    conn: &mut DbConn,
    limit: i64,
) -> QueryResult<Vec<(NaiveDateTime, NaiveDateTime)>> {
    account_deletions::table
        .order(account_deletions::deleted_at.desc())
        .limit(limit)
        .select((
            account_deletions::requested_at,
            account_deletions::deleted_at,
        ))
        .load(conn)
}
