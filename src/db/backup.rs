//! Backups of the SQLite database while the portal serves, and their
//! restore. PostgreSQL is backed up by its own tools (base backups and WAL
//! archiving: `deploy/restore-drill.sh`, README "Backups").
//!
//! A backup is `VACUUM INTO` a new file beside the target: SQLite copies
//! one consistent snapshot (a read transaction) while writers go on, and
//! the copy is checked (`PRAGMA integrity_check`), flushed to disk and only
//! then renamed to the name asked for. A target that is full or unwritable
//! fails before that name exists, and the database is not touched.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::DbUrl;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "PostgreSQL is backed up with its own tools (pg_basebackup and WAL archiving); see the README, \"Backups\", and deploy/restore-drill.sh"
    )]
    Postgres,
    #[error("{0} exists already; choose a new file name (nothing was written)")]
    TargetExists(PathBuf),
    #[error("the directory of {0} does not exist or is not a directory")]
    NoDirectory(PathBuf),
    #[error("cannot write the backup to {path}: {cause} (nothing was written under that name)")]
    Write { path: PathBuf, cause: String },
    #[error("{path} is not a usable e-Meterai SQLite database: {cause}")]
    NotABackup { path: PathBuf, cause: String },
    #[error(
        "{path} holds {accounts} account(s) and {registrations} registration(s); a restore does not overwrite data: move that file aside (with its -wal and -shm files) and run the restore again (nothing was changed)"
    )]
    TargetNotEmpty {
        path: PathBuf,
        accounts: i64,
        registrations: i64,
    },
    #[error("cannot read the database: {0}")]
    Read(String),
}

/// What a backup or restore holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub accounts: i64,
    pub registrations: i64,
    pub bytes: u64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

fn count(conn: &mut SqliteConnection, table: &str) -> QueryResult<i64> {
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .map(|c| c.n)
}

/// Opens a SQLite file as a finished e-Meterai database: sound, with its
/// schema (migrations) in it.
fn inspect(path: &Path) -> Result<Contents, BackupError> {
    let bad = |cause: String| BackupError::NotABackup {
        path: path.to_path_buf(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    let text = path
        .to_str()
        .ok_or_else(|| bad("the path is not UTF-8".into()))?;
    // Read-only: inspecting must not create or change anything.
    let mut conn = SqliteConnection::establish(&format!("file:{text}?mode=ro"))
        .map_err(|e| bad(e.to_string()))?;
    let check = diesel::sql_query("PRAGMA integrity_check")
        .load::<Line>(&mut conn)
        .map_err(|e| bad(e.to_string()))?;
    if check.first().map(|l| l.integrity_check.as_str()) != Some("ok") {
        return Err(bad("the integrity check failed".into()));
    }
    count(&mut conn, "__diesel_schema_migrations").map_err(|e| bad(e.to_string()))?;
    Ok(Contents {
        accounts: count(&mut conn, "accounts").map_err(|e| bad(e.to_string()))?,
        registrations: count(&mut conn, "registrations").map_err(|e| bad(e.to_string()))?,
        bytes: meta.len(),
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes a consistent copy of the SQLite database `url` names to `to`,
/// while instances go on serving.
pub fn backup(url: &DbUrl, to: &Path) -> Result<Contents, BackupError> {
    let DbUrl::Sqlite(from) = url else {
        return Err(BackupError::Postgres);
    };
    if to.exists() {
        return Err(BackupError::TargetExists(to.to_path_buf()));
    }
    let dir = parent(to);
    if !dir.is_dir() {
        return Err(BackupError::NoDirectory(to.to_path_buf()));
    }
    let partial = dir.join(format!(
        ".{}.partial-{}",
        to.file_name()
            .map_or("backup".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let write_error = |cause: String| BackupError::Write {
        path: to.to_path_buf(),
        cause,
    };
    let from_text = from
        .to_str()
        .ok_or_else(|| BackupError::Read("the path is not UTF-8".into()))?;
    let mut conn =
        SqliteConnection::establish(from_text).map_err(|e| BackupError::Read(e.to_string()))?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")
        .map_err(|e| BackupError::Read(e.to_string()))?;
    let target = partial.to_string_lossy().replace('\'', "''");
    let copied = conn
        .batch_execute(&format!("VACUUM INTO '{target}'"))
        .map_err(|e| write_error(e.to_string()))
        .and_then(|()| {
            let file = std::fs::File::open(&partial).map_err(|e| write_error(e.to_string()))?;
            file.sync_all().map_err(|e| write_error(e.to_string()))?;
            inspect(&partial)
        });
    let contents = match copied {
        Ok(contents) => contents,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    if let Err(e) = std::fs::rename(&partial, to) {
        let _ = std::fs::remove_file(&partial);
        return Err(write_error(e.to_string()));
    }
    sync_dir(dir);
    Ok(contents)
}

/// Puts a backup in place as the SQLite database `url` names. Refuses a
/// database that holds accounts or registrations, and a file that is not a
/// sound e-Meterai database. The instances must be stopped.
pub fn restore(url: &DbUrl, from: &Path) -> Result<Contents, BackupError> {
    let DbUrl::Sqlite(into) = url else {
        return Err(BackupError::Postgres);
    };
    let contents = inspect(from)?;
    if into.exists() {
        let held = inspect(into).ok();
        if let Some(held) = held
            && held.accounts + held.registrations > 0
        {
            return Err(BackupError::TargetNotEmpty {
                path: into.clone(),
                accounts: held.accounts,
                registrations: held.registrations,
            });
        }
    }
    let dir = parent(into);
    std::fs::create_dir_all(dir).map_err(|e| BackupError::Write {
        path: into.clone(),
        cause: e.to_string(),
    })?;
    let partial = dir.join(format!(".restore.partial-{}", std::process::id()));
    let write_error = |cause: String| BackupError::Write {
        path: into.clone(),
        cause,
    };
    let copied = std::fs::copy(from, &partial)
        .map_err(|e| write_error(e.to_string()))
        .and_then(|_| {
            std::fs::File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(|e| write_error(e.to_string()))
        });
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    // The empty database's write-ahead log must not be applied to the
    // restored file.
    for suffix in ["-wal", "-shm"] {
        let mut side = into.clone().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    std::fs::rename(&partial, into).map_err(|e| write_error(e.to_string()))?;
    sync_dir(dir);
    Ok(contents)
}
