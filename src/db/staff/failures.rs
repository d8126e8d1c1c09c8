//! The failure log as staff see it: filters, keyset pagination, notes,
//! resolution and per-day counts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::failures::FailureRow;
use crate::db::{DbConn, MultiBackend};
use crate::domain::sealed::{KeyRing, WrappedKey};
use crate::schema::{data_keys, failure_notes, failures};

/// What staff filter the failure log by. Each search matches exactly, on
/// an indexed column: a reference code, an email, or a NIK's keyed hash.
#[derive(Debug, Clone, Default)]
pub struct FailureFilter {
    pub reason: Option<String>,
    pub from: Option<NaiveDateTime>,
    /// Exclusive.
    pub to: Option<NaiveDateTime>,
    pub reference: Option<String>,
    pub email: Option<String>,
    pub nik_hash: Option<String>,
}

/// The position after the last row of a page: newest first, so the next
/// page holds what is older than this. Rows arriving meanwhile are newer
/// and never shift the pages already seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: NaiveDateTime,
    pub reference: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.at.and_utc().timestamp_micros(),
            self.reference
        )
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, reference) = text.split_once('_')?;
        let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        Some(Cursor {
            at,
            reference: reference.to_string(),
        })
    }
}

/// The failure log with each row's data key beside it (a left join: rows
/// without an address, or written in clear, have none), so that a page is
/// opened without a second query.
type WithKeys = diesel::dsl::LeftJoinOn<
    failures::table,
    data_keys::table,
    diesel::dsl::Eq<failures::data_key_id, diesel::dsl::Nullable<data_keys::id>>,
>;

/// Pages up to this many rows read their data keys in the same query.
const JOINED_KEYS_UP_TO: i64 = 100;

/// A data key's id, KEK version and wrapped bytes, as joined.
type KeyColumns = (String, i32, Vec<u8>);

fn filtered(
    ring: &KeyRing,
    filter: &FailureFilter,
) -> diesel::dsl::IntoBoxed<'static, WithKeys, MultiBackend> {
    let mut query = failures::table
        .left_join(data_keys::table.on(failures::data_key_id.eq(data_keys::id.nullable())))
        .into_boxed::<MultiBackend>();
    if let Some(reason) = &filter.reason {
        query = query.filter(failures::reason.eq(reason.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(failures::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(failures::occurred_at.lt(to));
    }
    if let Some(reference) = &filter.reference {
        query = query.filter(failures::reference.eq(reference.clone()));
    }
    if let Some(email) = &filter.email {
        query = query.filter(failures::email.eq_any(crate::db::identity::email_keys(ring, email)));
    }
    if let Some(hash) = &filter.nik_hash {
        query = query.filter(failures::nik_hash.eq(hash.clone()));
    }
    query
}

/// One page of failures, newest first, after `cursor`, their emails
/// opened.
pub fn page(
    conn: &mut DbConn,
    ring: &KeyRing,
    filter: &FailureFilter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<FailureRow>> {
    let mut query = filtered(ring, filter);
    if let Some(c) = cursor {
        // (occurred_at, reference) < (at, reference), written so both
        // planners see `occurred_at <= at` as the start of an index range
        // instead of scanning from the newest row down to the cursor.
        query = query.filter(
            failures::occurred_at.le(c.at).and(
                failures::occurred_at
                    .lt(c.at)
                    .or(failures::reference.lt(c.reference.clone())),
            ),
        );
    }
    let query = query
        .order((failures::occurred_at.desc(), failures::reference.desc()))
        .limit(limit);
    if limit > JOINED_KEYS_UP_TO {
        // A large batch (the CSV export): the rows alone (both planners
        // drop a left join whose columns are not used), then their few
        // keys in one more query, instead of a key beside every row.
        let rows: Vec<FailureRow> = query.select(failures::all_columns).load(conn)?;
        return crate::db::failures::opened(conn, ring, rows);
    }
    let rows: Vec<(FailureRow, Option<KeyColumns>)> = query
        .select((
            failures::all_columns,
            (data_keys::id, data_keys::kek_version, data_keys::wrapped).nullable(),
        ))
        .load(conn)?;
    let mut keys: Vec<WrappedKey> = Vec::new();
    let rows = rows
        .into_iter()
        .map(|(row, key)| {
            if let Some((id, kek_version, wrapped)) = key
                && !keys.iter().any(|k| k.id == id)
            {
                keys.push(WrappedKey {
                    id,
                    kek_version,
                    wrapped,
                });
            }
            row
        })
        .collect();
    crate::db::failures::open_with(ring, rows, keys)
}

/// Everything recorded for the same email or NIK, newest first.
pub fn related(
    conn: &mut DbConn,
    ring: &KeyRing,
    email: Option<&str>,
    nik_hash: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<FailureRow>> {
    let mut rows: Vec<FailureRow> = Vec::new();
    if let Some(email) = email {
        rows.extend(
            failures::table
                .filter(failures::email.eq_any(crate::db::identity::email_keys(ring, email)))
                .order(failures::occurred_at.desc())
                .limit(limit)
                .load::<FailureRow>(conn)?,
        );
    }
    if let Some(hash) = nik_hash {
        rows.extend(
            failures::table
                .filter(failures::nik_hash.eq(hash))
                .order(failures::occurred_at.desc())
                .limit(limit)
                .load::<FailureRow>(conn)?,
        );
    }
    rows.sort_by(|a, b| (b.occurred_at, &b.reference).cmp(&(a.occurred_at, &a.reference)));
    rows.dedup_by(|a, b| a.reference == b.reference);
    rows.truncate(limit as usize);
    crate::db::failures::opened(conn, ring, rows)
}

#[derive(Debug, Clone, Queryable)]
pub struct Note {
    pub id: String,
    pub reference: String,
    pub staff_email: String,
    pub note: String,
    pub created_at: NaiveDateTime,
}

pub fn add_note(
    conn: &mut DbConn,
    reference: &str,
    staff_email: &str,
    note: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(failure_notes::table)
        .values((
            failure_notes::id.eq(uuid::Uuid::new_v4().to_string()),
            failure_notes::reference.eq(reference),
            failure_notes::staff_email.eq(staff_email),
            failure_notes::note.eq(note),
            failure_notes::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn notes(conn: &mut DbConn, reference: &str) -> QueryResult<Vec<Note>> {
    failure_notes::table
        .filter(failure_notes::reference.eq(reference))
        .order(failure_notes::created_at.asc())
        .load(conn)
}

pub fn resolve(
    conn: &mut DbConn,
    reference: &str,
    staff_email: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(failures::table.find(reference))
        .set((
            failures::resolved_at.eq(now),
            failures::resolved_by.eq(staff_email),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub day: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub reason: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// Failures per day and reason in `[from, to)`, days in WIB (UTC+7), the
/// time staff read everywhere. The day expression differs per backend;
/// this is the one place that knows.
pub fn counts_by_day(
    conn: &mut DbConn,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<DayCount>> {
    use diesel::sql_types::Timestamp;
    match conn {
        DbConn::Postgres(pg) => diesel::sql_query(
            "SELECT to_char(occurred_at + interval '7 hours', 'YYYY-MM-DD') AS day, reason, COUNT(*) AS n FROM failures \
             WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(pg),
        DbConn::Sqlite(lite) => diesel::sql_query(
            "SELECT substr(datetime(occurred_at, '+7 hours'), 1, 10) AS day, reason, COUNT(*) AS n FROM failures \
             WHERE occurred_at >= ? AND occurred_at < ? GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(lite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = chrono::DateTime::from_timestamp_micros(1_795_546_333_123_456)
            .unwrap()
            .naive_utc();
        let cursor = Cursor {
            at,
            reference: "DFT-7K3Q-9XWZ".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("garbage"), None);
    }
}
