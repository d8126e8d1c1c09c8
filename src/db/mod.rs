//! Storage on SQLite (the embedded default) or PostgreSQL, from one binary.
//!
//! The backend is picked from the URL scheme by our own r2d2 manager: the
//! MultiConnection derive's `establish` would treat any string, even a
//! mistyped PostgreSQL URL, as a SQLite file name.

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub mod account_requests;
pub mod accounts;
pub mod cases;
pub mod failures;
pub mod identity;
pub mod keys;
pub mod mail_events;
pub mod not_me;
pub mod outbox;
pub mod own_data;
pub mod registrations;
pub mod sessions;
pub mod staff;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Only SQL both share goes through it;
/// anything backend-specific matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Which backend a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Postgres(String),
    /// Path of the SQLite file.
    Sqlite(PathBuf),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<DbUrl, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(DbError::BadUrl);
        }
        Ok(DbUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DbUrl::Postgres(_) => "postgres",
            DbUrl::Sqlite(_) => "sqlite",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "DATABASE_URL must be a postgres:// or postgresql:// URL, a sqlite:// URL or a file path"
    )]
    BadUrl,
    #[error("cannot create the directory for the SQLite database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] r2d2::Error),
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

/// r2d2 manager that opens the backend the URL names and prepares SQLite
/// connections (WAL, busy timeout, foreign keys).
#[derive(Debug, Clone)]
pub struct Manager {
    url: DbUrl,
}

impl Manager {
    pub fn new(url: DbUrl) -> Self {
        Manager { url }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        use diesel::r2d2::Error;
        match &self.url {
            DbUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConn::Postgres)
                .map_err(Error::ConnectionError),
            DbUrl::Sqlite(path) => {
                let path = path.to_str().ok_or(Error::ConnectionError(
                    ConnectionError::InvalidConnectionUrl("the path is not UTF-8".into()),
                ))?;
                let mut conn = SqliteConnection::establish(path).map_err(Error::ConnectionError)?;
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Runs `f` again (up to 5 times, briefly apart) when SQLite answers
/// "database is locked"/"busy": a transaction that reads before it writes
/// fails at once, without waiting on the busy timeout, when another writer
/// committed in between. Other errors, and PostgreSQL, pass straight through.
pub fn retry_busy<T>(mut f: impl FnMut() -> diesel::QueryResult<T>) -> diesel::QueryResult<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(diesel::result::Error::DatabaseError(kind, info))
                if attempt < 5 && is_busy_message(info.message()) =>
            {
                tracing::debug!(?kind, attempt, "database busy; trying again");
                std::thread::sleep(Duration::from_millis(10 * attempt));
            }
            other => return other,
        }
    }
}

pub use crate::error::is_busy_message;

/// Runs blocking database work with a pooled connection on the blocking
/// thread pool (never on the async workers). A connection that cannot be
/// had in time, like any database error, becomes an `AppError`.
pub async fn run<T, E>(
    pool: &Pool,
    work: impl FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
) -> Result<T, crate::error::AppError>
where
    T: Send + 'static,
    E: Into<crate::error::AppError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        work(&mut conn).map_err(Into::into)
    })
    .await
    .map_err(crate::error::AppError::unavailable)?
}

/// Initialises OpenSSL (shared by libpq and the mail client) before any
/// connection, with `OPENSSL_INIT_NO_ATEXIT`: otherwise libpq's own
/// initialisation registers OpenSSL's exit-time cleanup, which frees state
/// other threads may still be using while the process exits. Idempotent.
pub fn init_tls() {
    openssl_sys::init();
}

/// Builds the pool. For SQLite the file's directory is created first.
/// Connections are made lazily, so an unreachable database does not stop the
/// pool from being built; `migrate` is what fails then.
pub fn build_pool(url: &DbUrl, size: u32, timeout: Duration) -> Result<Pool, DbError> {
    init_tls();
    if let DbUrl::Sqlite(path) = url
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(timeout)
        .test_on_check_out(false)
        .build_unchecked(Manager::new(url.clone())))
}

/// Runs the pending migrations of the connection's backend.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| DbError::Migrate(e.to_string()))
}

/// Opens one connection and brings the schema up to date.
pub fn migrate(pool: &Pool) -> Result<usize, DbError> {
    let mut conn = pool.get()?;
    run_migrations(&mut conn)
}

/// Which file a SQLite database is (device and inode), to notice it being
/// removed or replaced under the running instance. `None` for PostgreSQL.
pub fn sqlite_identity(url: &DbUrl) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    match url {
        DbUrl::Sqlite(path) => std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())),
        DbUrl::Postgres(_) => None,
    }
}

/// What is wrong with the SQLite file itself, if anything: removed (the
/// instance would go on writing into a file that is gone at the next
/// restart), replaced by another file, or made read-only.
pub fn sqlite_fault(url: &DbUrl, identity: Option<(u64, u64)>, min_free_mb: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let DbUrl::Sqlite(path) = url else {
        return None;
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Some(format!("SQLite file {} is missing", path.display()));
    };
    if identity.is_some_and(|id| id != (meta.dev(), meta.ino())) {
        return Some(format!("SQLite file {} was replaced", path.display()));
    }
    if meta.permissions().readonly() {
        return Some(format!("SQLite file {} is read-only", path.display()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match free_mb(dir) {
        Some(free) if free < min_free_mb => Some(format!(
            "the disk of {} is nearly full: {free} MB free, {min_free_mb} MB wanted",
            path.display()
        )),
        _ => None,
    }
}

/// Megabytes free for this (unprivileged) process on the file system of
/// `dir`; `None` when it cannot be read.
pub fn free_mb(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed struct to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64) / (1024 * 1024))
}

/// Readiness: the SQLite file is the one opened, still there and writable,
/// and a connection can be had that answers a query reading the database.
pub fn check_ready(
    pool: &Pool,
    url: &DbUrl,
    identity: Option<(u64, u64)>,
    min_free_mb: u64,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(fault) = sqlite_fault(url, identity, min_free_mb) {
        return Err(fault);
    }
    let mut conn = pool.get_timeout(timeout).map_err(|e| e.to_string())?;
    conn.batch_execute("SELECT 1 FROM __diesel_schema_migrations LIMIT 1")
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert_eq!(
            DbUrl::parse("postgres://u@h/db").unwrap().backend_name(),
            "postgres"
        );
        assert_eq!(
            DbUrl::parse("postgresql://u@h/db").unwrap().backend_name(),
            "postgres"
        );
        assert_eq!(
            DbUrl::parse("data/x.sqlite3").unwrap(),
            DbUrl::Sqlite("data/x.sqlite3".into())
        );
        assert_eq!(
            DbUrl::parse("sqlite://data/x.db").unwrap(),
            DbUrl::Sqlite("data/x.db".into())
        );
        assert!(DbUrl::parse("mysql://u@h/db").is_err());
        assert!(DbUrl::parse("").is_err());
    }
}
