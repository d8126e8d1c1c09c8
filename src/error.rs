//! The application's one error type: what went wrong, in terms a page can
//! be chosen from (not found, refused, unavailable, internal ...), with the
//! cause kept for the log. How it becomes an HTTP answer (`ResponseError`)
//! and the error pages live with the web layer, in `errors.rs`.

use std::error::Error as StdError;
use std::fmt::Write as _;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("forbidden")]
    Forbidden,
    /// The request body passed its cap while it was read.
    #[error("request body too large")]
    TooLarge,
    /// Refused by a rate limit; the failure is recorded under `reference`,
    /// and the limit's window ends in `retry_after_secs`.
    #[error("rate limited")]
    RateLimited {
        reference: String,
        retry_after_secs: i64,
    },
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    /// Password hashing is at capacity: a 503 with `Refresh` back to
    /// `retry`, where the citizen can send the same again.
    #[error("busy")]
    Busy {
        #[source]
        cause: BoxError,
        retry: String,
    },
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        AppError::Internal(cause.into())
    }

    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        AppError::Unavailable(cause.into())
    }
}

impl From<r2d2::Error> for AppError {
    /// No connection could be had in time: the database is down or overloaded.
    fn from(e: r2d2::Error) -> Self {
        AppError::Unavailable(Box::new(e))
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound,
            // The server went away, or is a standby now (SQLSTATE 25006):
            // the failover is under way, try again shortly.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            ) => AppError::Unavailable(Box::new(e)),
            // Sealed data that does not open (a key retired or missing, a
            // value altered or moved): unavailable, not garbage.
            Error::DeserializationError(ref inner)
                if inner.is::<crate::domain::sealed::SealError>() =>
            {
                AppError::Unavailable(Box::new(e))
            }
            // The database is gone, restarting or too busy: not our bug,
            // and worth trying again later.
            Error::DatabaseError(_, ref info) if is_unavailable_message(info.message()) => {
                AppError::Unavailable(Box::new(e))
            }
            other => AppError::Internal(Box::new(other)),
        }
    }
}

/// SQLite's answer when another connection holds the write lock.
pub fn is_busy_message(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// PostgreSQL's answers when the connection's server is gone, going, cut
/// off, or no longer the primary: the connection is of no further use.
pub fn is_connection_lost(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "closed the connection",
        "terminating connection",
        "no connection to the server",
        "the database system is",
        "read-only transaction",
        "ssl syscall error",
        "unexpected eof",
        "eof detected",
        "broken pipe",
        "connection reset",
        "connection timed out",
        "server closed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

fn is_unavailable_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    is_busy_message(&m)
        || is_connection_lost(&m)
        || [
            // The statement timeout: the server is alive but too slow.
            "canceling statement due to statement timeout",
            "closed the connection",
            "terminating connection",
            "connection refused",
            "could not connect",
            "no connection to the server",
            "the database system is",
            "unable to open database",
            "disk i/o error",
            // A full disk or a read-only file: storage faults, not bugs.
            "database or disk is full",
            "no space left on device",
            "could not extend file",
            "readonly database",
            // A connection cut under a query (TLS or plain).
            "ssl error",
            "ssl syscall error",
            "unexpected eof",
            "eof detected",
            "broken pipe",
            "connection reset",
            "server closed",
        ]
        .iter()
        .any(|needle| m.contains(needle))
}

/// The error and every cause below it, on one line.
pub fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(out, ": {cause}");
        source = cause.source();
    }
    out
}
