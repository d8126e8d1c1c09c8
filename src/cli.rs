//! The command line: `emeterai [serve]`, `emeterai migrate`. Every setting
//! is a flag and an environment variable; `--help` lists them all.

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "emeterai",
    version,
    about = "e-Meterai registration portal",
    long_about = "e-Meterai registration portal.\n\nSettings are read from the environment (and a .env file when present); each can also be given as a flag."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the portal (the default). Runs pending migrations first.
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE while the
    /// portal serves (PostgreSQL: see the README, "Backups").
    Backup {
        /// The new file (it must not exist yet).
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Put a backup made by `emeterai backup` in place as the SQLite
    /// database DATABASE_URL names. Stop the instances first; a database
    /// that holds accounts or registrations is refused.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
    },
    /// Manage support staff accounts.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Maintain stored KTP photos.
    #[command(subcommand)]
    Photos(PhotosCommand),
    /// The keys that seal citizens' data at rest (EMETERAI_KEY_FILE).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key-encryption key version to the key file. New data keys
    /// are wrapped under it by every instance started afterwards; restart
    /// the instances (one at a time), then run `emeterai keys rewrap`.
    Rotate,
    /// Re-wrap every data key still under an older key-encryption key
    /// version with the newest, in batches (resumable, safe to stop; the
    /// running instances do the same in the background), with a progress
    /// bar.
    Rewrap,
    /// Seal the KTP photos, registrations, accounts, failure rows and mails stored in clear by
    /// versions before sealing, in batches (the running instances do the
    /// same in the background).
    SealExisting,
    /// Data keys per key-encryption key version, and what is still in clear.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum PhotosCommand {
    /// Re-encode stored photos made before they were normalised: upright,
    /// at most 1600 px, JPEG without metadata. Photos already normalised are
    /// left alone; safe to run again, and while the portal serves.
    Reencode,
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account. The password (at least 12 characters) is read
    /// from standard input when it is not a terminal, else prompted for twice.
    /// Unless EMETERAI_STAFF_SECOND_FACTOR=off, it also prints the key for
    /// the authenticator app and ten one-time recovery codes, once.
    Add {
        #[arg(long)]
        email: String,
    },
    /// Remove a staff member's second factor (a lost phone) and end their
    /// sessions; their next sign-in sets up the authenticator app again.
    ResetSecondFactor {
        #[arg(long)]
        email: String,
    },
    /// List staff accounts.
    List,
    /// Disable a staff account and end its sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
}
