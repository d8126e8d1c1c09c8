//! Rows of the failure log as read back (written by the failure-log service in failures.rs).

use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A failure as read back, with its resolution by staff.
#[derive(Debug, Clone, Queryable)]
pub struct FailureRow {
    pub reference: String,
    pub occurred_at: NaiveDateTime,
    pub reason: String,
    pub fields: String,
    pub email: Option<String>,
    pub nik_masked: Option<String>,
    pub nik_hash: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub path: String,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolved_by: Option<String>,
    pub email_shape: Option<String>,
}
