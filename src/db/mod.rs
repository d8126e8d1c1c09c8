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
pub mod backup;
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
pub mod status;

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

    /// The URL with the connection settings that make failover heal
    /// itself added where the URL does not set them already: a primary is
    /// looked for among the hosts (`target_session_attrs=read-write`), a
    /// host that does not answer is given up after `connect_timeout`
    /// seconds (then libpq tries the next one), and a connection whose
    /// server went silent fails within `tcp_user_timeout` (data not
    /// acknowledged) or the keepalives (nothing heard), instead of hanging.
    pub fn tuned(self, tuning: &PgTuning) -> DbUrl {
        let DbUrl::Postgres(url) = self else {
            return self;
        };
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let given: Vec<&str> = query
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .collect();
        let keepalive = tuning.keepalive_secs.max(1);
        let defaults = [
            ("target_session_attrs", "read-write".to_string()),
            ("connect_timeout", tuning.connect_timeout_secs.to_string()),
            ("keepalives", "1".to_string()),
            ("keepalives_idle", keepalive.to_string()),
            (
                "keepalives_interval",
                keepalive.div_ceil(3).max(1).to_string(),
            ),
            ("keepalives_count", "3".to_string()),
            ("tcp_user_timeout", (keepalive * 1000).to_string()),
        ];
        let mut url = url.clone();
        for (key, value) in defaults {
            if !given.contains(&key) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{key}={value}"));
            }
        }
        DbUrl::Postgres(url)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DbUrl::Postgres(_) => "postgres",
            DbUrl::Sqlite(_) => "sqlite",
        }
    }
}

/// How connections to PostgreSQL behave when a server fails (settings
/// `EMETERAI_DB_CONNECT_TIMEOUT_SECS`, `EMETERAI_DB_KEEPALIVE_SECS`,
/// `EMETERAI_DB_STATEMENT_TIMEOUT_SECS`). SQLite ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTuning {
    pub connect_timeout_secs: u64,
    pub keepalive_secs: u64,
    /// 0: no limit (maintenance commands).
    pub statement_timeout_secs: u64,
}

impl Default for PgTuning {
    fn default() -> Self {
        PgTuning {
            connect_timeout_secs: 2,
            keepalive_secs: 5,
            statement_timeout_secs: 15,
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
    #[error("cannot connect to the database: {0}{hint}", hint = standby_hint(&.0.to_string()))]
    Connect(#[from] r2d2::Error),
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

/// What to do when every server the URL names refused to be written to.
fn standby_hint(message: &str) -> &'static str {
    if message.contains("read-only") || message.contains("standby") {
        " (no server in DATABASE_URL accepts writes: each is a standby or read-only; name the primary, or promote a standby)"
    } else {
        ""
    }
}

/// r2d2 manager that opens the backend the URL names and prepares SQLite
/// connections (WAL, busy timeout, foreign keys).
#[derive(Debug, Clone)]
pub struct Manager {
    url: DbUrl,
    statement_timeout_secs: u64,
}

impl Manager {
    pub fn new(url: DbUrl, tuning: &PgTuning) -> Self {
        Manager {
            url: url.tuned(tuning),
            statement_timeout_secs: tuning.statement_timeout_secs,
        }
    }
}

thread_local! {
    /// Set just before a connection is given back that must not be handed
    /// out again: r2d2 asks `has_broken` on the same thread, at once.
    static DISCARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Connections made before this generation are closed instead of being
/// handed out again: it moves on when a connection finds its server gone
/// or read-only (a failover), since the others to that server are as dead.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Connections closed that way, for `/metrics` (`emeterai_db_connections_retired`).
pub static RETIRED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The generation a pooled connection was first handed out in.
#[derive(Clone, Copy)]
struct Born(u64);

/// Closes the connection instead of putting it back into the pool.
pub fn discard(conn: PooledConn) {
    RETIRED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    DISCARD.with(|flag| flag.set(true));
    drop(conn);
    DISCARD.with(|flag| flag.set(false));
}

/// A connection from the pool that was made since the last failover: older
/// ones are closed on the way (each would fail once before r2d2 noticed).
pub fn checkout(pool: &Pool, timeout: Duration) -> Result<PooledConn, r2d2::Error> {
    use std::sync::atomic::Ordering;
    loop {
        let mut conn = pool.get_timeout(timeout)?;
        let now = GENERATION.load(Ordering::Relaxed);
        match r2d2::PooledConnection::extensions(&conn).get::<Born>() {
            Some(Born(born)) if *born < now => discard(conn),
            Some(_) => return Ok(conn),
            None => {
                r2d2::PooledConnection::extensions_mut(&mut conn).insert(Born(now));
                return Ok(conn);
            }
        }
    }
}

/// Whether an error means the connection's server is gone, read-only (a
/// standby, or a primary demoted) or cut off: the connection is closed and
/// every connection made before it is retired (`checkout`).
pub fn is_failover_error(error: &(dyn std::error::Error + 'static)) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(db) = e.downcast_ref::<Error>() {
            return match db {
                Error::DatabaseError(
                    DatabaseErrorKind::ReadOnlyTransaction
                    | DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand,
                    _,
                ) => true,
                Error::DatabaseError(_, info) => crate::error::is_connection_lost(info.message()),
                _ => false,
            };
        }
        cause = e.source();
    }
    false
}

/// After `work` failed on `conn` with `error`: a failover error closes the
/// connection and retires the older ones. Only PostgreSQL fails over.
fn after_failure(conn: PooledConn, error: &(dyn std::error::Error + 'static)) {
    if matches!(*conn, DbConn::Postgres(_)) && is_failover_error(error) {
        let born = r2d2::PooledConnection::extensions(&conn)
            .get::<Born>()
            .map_or(0, |b| b.0);
        // Only a connection of the current generation moves it on: the
        // older ones failing too say nothing new.
        let _ = GENERATION.compare_exchange(
            born,
            born + 1,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::warn!("database connection lost or read-only; reconnecting to the primary");
        discard(conn);
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        use diesel::r2d2::Error;
        match &self.url {
            DbUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(Error::ConnectionError)?;
                // A statement the server does not finish in time is
                // cancelled by the server, so a request ends with a 503.
                conn.batch_execute(&format!(
                    "SET statement_timeout = '{}s'",
                    self.statement_timeout_secs
                ))
                .map_err(Error::QueryError)?;
                Ok(DbConn::Postgres(conn))
            }
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
        DISCARD.with(|flag| flag.get()) || conn.is_broken()
    }
}

/// Runs `f` again (up to 10 times, 10 ms more apart each time: 450 ms in
/// all, so a writer held up on a loaded machine still gets through) when SQLite answers
/// "database is locked"/"busy": a transaction that reads before it writes
/// fails at once, without waiting on the busy timeout, when another writer
/// committed in between. Other errors, and PostgreSQL, pass straight through.
/// A service's transaction that also builds mails or pages returns an
/// `AppError` rather than a diesel error: it is retried the same way.
pub fn retry_busy<T, E: Busy>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(e) if attempt < 10 && e.is_busy() => {
                tracing::debug!(attempt, "database busy; trying again");
                std::thread::sleep(Duration::from_millis(10 * attempt));
            }
            other => return other,
        }
    }
}

/// An error that may be SQLite's "database is locked"/"busy" (`retry_busy`).
pub trait Busy {
    fn is_busy(&self) -> bool;
}

impl Busy for diesel::result::Error {
    fn is_busy(&self) -> bool {
        matches!(self, diesel::result::Error::DatabaseError(_, info) if is_busy_message(info.message()))
    }
}

impl Busy for crate::error::AppError {
    fn is_busy(&self) -> bool {
        match self {
            crate::error::AppError::Unavailable(cause) => cause
                .downcast_ref::<diesel::result::Error>()
                .is_some_and(Busy::is_busy),
            _ => false,
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
    // The whole piece of work has a deadline: a server that stopped
    // answering without closing the connection (a hung host) must not hold
    // the citizen longer than the statement timeout would.
    let deadline = pool.connection_timeout() + Duration::from_secs(20);
    let task = tokio::task::spawn_blocking(move || {
        let timeout = pool.connection_timeout();
        let mut conn = checkout(&pool, timeout)?;
        let result = work(&mut conn).map_err(Into::into);
        if let Err(error) = &result {
            after_failure(conn, error);
        }
        result
    });
    match tokio::time::timeout(deadline, task).await {
        Ok(joined) => joined.map_err(crate::error::AppError::unavailable)?,
        Err(_) => Err(crate::error::AppError::unavailable(
            "the database did not answer in time",
        )),
    }
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
pub fn build_pool(
    url: &DbUrl,
    size: u32,
    timeout: Duration,
    tuning: &PgTuning,
) -> Result<Pool, DbError> {
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
        .build_unchecked(Manager::new(url.clone(), tuning)))
}

/// Runs the pending migrations of the connection's backend.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Postgres(c) => {
            // A migration on a large table may take longer than a request.
            c.batch_execute("SET statement_timeout = 0")
                .map_err(|e| DbError::Migrate(e.to_string()))?;
            c.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len())
        }
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
    let mut conn = checkout(pool, timeout).map_err(|e| e.to_string())?;
    let answer = conn.batch_execute("SELECT 1 FROM __diesel_schema_migrations LIMIT 1");
    if let Err(error) = answer {
        let text = error.to_string();
        after_failure(conn, &error);
        return Err(text);
    }
    // A server that became a standby still answers reads: not ready, and
    // its connections go, so that the next ones find the primary.
    if let DbConn::Postgres(pg) = &mut *conn {
        #[derive(diesel::QueryableByName)]
        struct Recovery {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            standby: bool,
        }
        use diesel::RunQueryDsl;
        let standby = diesel::sql_query("SELECT pg_is_in_recovery() AS standby")
            .get_result::<Recovery>(pg)
            .map(|r| r.standby);
        match standby {
            Ok(false) => {}
            Ok(true) => {
                let text = "the database server is a standby (read-only); no primary answers";
                after_failure(
                    conn,
                    &diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::ReadOnlyTransaction,
                        Box::new(text.to_string()),
                    ),
                );
                return Err(text.into());
            }
            Err(error) => {
                let text = error.to_string();
                after_failure(conn, &error);
                return Err(text);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction that failed with SQLite's busy answer is run again,
    /// whether it returns a diesel error or an `AppError` (a service's
    /// transaction that also builds mails); other errors are not.
    #[test]
    fn busy_transactions_are_run_again() {
        use crate::error::AppError;
        use diesel::result::{DatabaseErrorKind, Error};
        let busy = || {
            Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("database is locked".to_string()),
            )
        };
        let mut tries = 0;
        let out: Result<u32, Error> = retry_busy(|| {
            tries += 1;
            if tries < 3 { Err(busy()) } else { Ok(7) }
        });
        assert_eq!((out.unwrap(), tries), (7, 3));
        let mut tries = 0;
        let out: Result<u32, AppError> = retry_busy(|| {
            tries += 1;
            if tries < 3 {
                Err(AppError::from(busy()))
            } else {
                Ok(7)
            }
        });
        assert_eq!((out.unwrap(), tries), (7, 3));
        let mut tries = 0;
        let out: Result<u32, AppError> = retry_busy(|| {
            tries += 1;
            Err(AppError::from(Error::NotFound))
        });
        assert!(matches!(out, Err(AppError::NotFound)));
        assert_eq!(tries, 1);
        let mut tries = 0;
        let out: Result<u32, AppError> = retry_busy(|| {
            tries += 1;
            Err(AppError::from(busy()))
        });
        assert!(matches!(out, Err(AppError::Unavailable(_))));
        assert_eq!(tries, 10, "gives up after ten");
    }

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
