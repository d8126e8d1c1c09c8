//! Settings: read once from the environment (or command-line flags) into one
//! struct that is passed to the application. Never a global, so tests can
//! build their own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Where the portal runs. Production refuses to start without an explicit
/// secret key.
/// The Contact Center's telephone number unless configured.
pub const DEFAULT_CONTACT_PHONE: &str = "1500 159";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting of the portal. Each one is an environment variable (and a
/// flag of the same meaning); `emeterai --help` lists them all.
#[derive(Clone, Args)]
pub struct Settings {
    /// Database: `postgres://...` / `postgresql://...`, or a SQLite path or `sqlite://` URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = "data/emeterai.sqlite3",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Listen address.
    #[arg(
        long,
        env = "EMETERAI_BIND",
        value_name = "EMETERAI_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Public URL of the portal, used in mailed links.
    #[arg(long, env = "EMETERAI_BASE_URL", value_name = "EMETERAI_BASE_URL", default_value = "http://127.0.0.1:8080", value_parser = parse_base_url)]
    pub base_url: String,

    /// `development` or `production`. Production requires EMETERAI_SECRET_KEY.
    #[arg(
        long = "env",
        env = "EMETERAI_ENV",
        value_name = "EMETERAI_ENV",
        default_value = "development"
    )]
    pub environment: Environment,

    /// Key for signing cookies and tokens (at least 32 characters). In development
    /// it is generated and kept in the data directory when unset.
    #[arg(
        long,
        env = "EMETERAI_SECRET_KEY",
        value_name = "EMETERAI_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,

    /// The key file: the key-encryption key versions that wrap the data
    /// keys sealing citizens' data at rest, and the blind-index key. Keep it
    /// off the database host and out of its backups. Required in
    /// production; in development `EMETERAI_DATA_DIR/keys.txt`, generated.
    #[arg(long, env = "EMETERAI_KEY_FILE", value_name = "EMETERAI_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// The PKCS#11 module (an HSM's library, e.g. SoftHSM2's
    /// /usr/lib/softhsm/libsofthsm2.so) for key-encryption keys written
    /// `kek N pkcs11:LABEL` in the key file.
    #[arg(
        long,
        env = "EMETERAI_PKCS11_MODULE",
        value_name = "EMETERAI_PKCS11_MODULE"
    )]
    pub pkcs11_module: Option<PathBuf>,

    /// The label of the PKCS#11 token that holds those keys.
    #[arg(
        long,
        env = "EMETERAI_PKCS11_TOKEN",
        value_name = "EMETERAI_PKCS11_TOKEN"
    )]
    pub pkcs11_token: Option<String>,

    /// The token's user PIN.
    #[arg(
        long,
        env = "EMETERAI_PKCS11_PIN",
        value_name = "EMETERAI_PKCS11_PIN",
        hide_env_values = true
    )]
    pub pkcs11_pin: Option<String>,

    /// Directory for the SQLite database and the development secret key.
    #[arg(
        long,
        env = "EMETERAI_DATA_DIR",
        value_name = "EMETERAI_DATA_DIR",
        default_value = "data"
    )]
    pub data_dir: PathBuf,

    /// Mail provider endpoint; unset prints outgoing mail to the log.
    #[arg(long, env = "EMETERAI_MAIL_API_URL", value_name = "EMETERAI_MAIL_API_URL", value_parser = parse_http_url)]
    pub mail_api_url: Option<String>,

    /// Mail through SMTP instead of the HTTP API: `smtp://host:25`,
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465`.
    #[arg(
        long,
        env = "EMETERAI_SMTP_URL",
        value_name = "EMETERAI_SMTP_URL",
        hide_env_values = true,
        conflicts_with = "mail_api_url"
    )]
    pub smtp_url: Option<String>,

    /// Bearer token for the mail provider.
    #[arg(
        long,
        env = "EMETERAI_MAIL_API_KEY",
        value_name = "EMETERAI_MAIL_API_KEY",
        hide_env_values = true
    )]
    pub mail_api_key: Option<String>,

    /// Sender address of outgoing mail.
    #[arg(
        long,
        env = "EMETERAI_MAIL_FROM",
        value_name = "EMETERAI_MAIL_FROM",
        default_value = "noreply@e-meterai.local"
    )]
    pub mail_from: String,

    /// bcrypt cost for passwords (4-31; tests may use 4).
    #[arg(long, env = "EMETERAI_BCRYPT_COST", value_name = "EMETERAI_BCRYPT_COST", default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Contact Center telephone number shown on every help and error page.
    #[arg(
        long,
        env = "EMETERAI_CONTACT_PHONE",
        value_name = "EMETERAI_CONTACT_PHONE",
        default_value = DEFAULT_CONTACT_PHONE
    )]
    pub contact_phone: String,

    /// Contact Center WhatsApp number, international digits (used for wa.me links).
    #[arg(long, env = "EMETERAI_CONTACT_WHATSAPP", value_name = "EMETERAI_CONTACT_WHATSAPP", default_value = "628119590159", value_parser = parse_digits)]
    pub contact_whatsapp: String,

    /// Contact Center email address.
    #[arg(
        long,
        env = "EMETERAI_CONTACT_EMAIL",
        value_name = "EMETERAI_CONTACT_EMAIL",
        default_value = "cs@e-meterai.local"
    )]
    pub contact_email: String,

    /// Database connections per instance.
    #[arg(long, env = "EMETERAI_DB_POOL_SIZE", value_name = "EMETERAI_DB_POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,

    /// Seconds to wait for a database connection before answering 503.
    #[arg(long, env = "EMETERAI_DB_TIMEOUT_SECS", value_name = "EMETERAI_DB_TIMEOUT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub db_timeout_secs: u64,

    /// PostgreSQL: seconds to wait for one host of `DATABASE_URL` to answer before the next is
    /// tried (libpq `connect_timeout`; a URL that sets it wins).
    #[arg(long, env = "EMETERAI_DB_CONNECT_TIMEOUT_SECS", value_name = "EMETERAI_DB_CONNECT_TIMEOUT_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub db_connect_timeout_secs: u64,

    /// PostgreSQL: seconds after which a connection whose server went silent (a network
    /// partition: no reset, no answer) is given up (TCP keepalives and `tcp_user_timeout`).
    #[arg(long, env = "EMETERAI_DB_KEEPALIVE_SECS", value_name = "EMETERAI_DB_KEEPALIVE_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_keepalive_secs: u64,

    /// PostgreSQL: seconds a statement may run before the server cancels it (503).
    #[arg(long, env = "EMETERAI_DB_STATEMENT_TIMEOUT_SECS", value_name = "EMETERAI_DB_STATEMENT_TIMEOUT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub db_statement_timeout_secs: u64,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "EMETERAI_WORKERS", value_name = "EMETERAI_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Seconds a client has to send a whole request body (not only its headers); a body still
    /// arriving after that is cut off and its connection closed (slow uploads that hold sockets).
    #[arg(long, env = "EMETERAI_BODY_TIMEOUT_SECS", value_name = "EMETERAI_BODY_TIMEOUT_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_secs: u64,

    /// Seconds a client has to send a request's headers, on a new connection and on every later
    /// request of a kept-alive one.
    #[arg(long, env = "EMETERAI_HEADER_TIMEOUT_SECS", value_name = "EMETERAI_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_timeout_secs: u64,

    /// Seconds a connection is kept open for a next request; 0 (the default) answers one request
    /// per connection. actix-web times only a connection's first request headers, so a kept-alive
    /// connection's next request could stall forever; run behind a proxy (deploy/) that keeps the
    /// citizens' connections alive instead.
    #[arg(long, env = "EMETERAI_KEEP_ALIVE_SECS", value_name = "EMETERAI_KEEP_ALIVE_SECS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub keep_alive_secs: u64,

    /// Open connections per instance (all workers); default: the open-file limit less room for
    /// the database, the mail client and the log.
    #[arg(long, env = "EMETERAI_MAX_CONNECTIONS", value_name = "EMETERAI_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_connections: Option<u32>,

    /// Largest accepted request body in bytes, for every form but registration.
    #[arg(long, env = "EMETERAI_MAX_BODY_BYTES", value_name = "EMETERAI_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_body_bytes: u64,

    /// Largest KTP photo file accepted on the registration form (phones' photos are 3-5 MB); a larger
    /// one returns the form with every answer kept. It is stored shrunk to at most 1 MB.
    #[arg(long, env = "EMETERAI_KTP_UPLOAD_MAX_BYTES", value_name = "EMETERAI_KTP_UPLOAD_MAX_BYTES", default_value_t = 15 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024 * 1024..=200 * 1024 * 1024))]
    pub ktp_upload_max_bytes: u64,

    /// KTP photos decoded at once (each needs up to ~50 MB while it is shrunk); default one per core.
    #[arg(long, env = "EMETERAI_PHOTO_CONCURRENCY", value_name = "EMETERAI_PHOTO_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub photo_concurrency: Option<u16>,

    /// Seconds that in-flight requests get to finish on SIGTERM/SIGINT.
    #[arg(long, env = "EMETERAI_SHUTDOWN_TIMEOUT_SECS", value_name = "EMETERAI_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_timeout_secs: u64,

    /// Hours a verification link stays valid.
    #[arg(long, env = "EMETERAI_VERIFY_TOKEN_TTL_HOURS", value_name = "EMETERAI_VERIFY_TOKEN_TTL_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub verify_token_ttl_hours: u32,

    /// Hours an unverified registration is kept before it is deleted (freeing its email and NIK).
    #[arg(long, env = "EMETERAI_UNVERIFIED_TTL_HOURS", value_name = "EMETERAI_UNVERIFIED_TTL_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub unverified_ttl_hours: u32,

    /// Seconds before a verification link can be sent again to the same address.
    #[arg(long, env = "EMETERAI_RESEND_COOLDOWN_SECS", value_name = "EMETERAI_RESEND_COOLDOWN_SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=86400))]
    pub resend_cooldown_secs: u32,

    /// Seconds to wait for the mail provider before counting the try as failed.
    #[arg(long, env = "EMETERAI_MAIL_TIMEOUT_SECS", value_name = "EMETERAI_MAIL_TIMEOUT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub mail_timeout_secs: u64,

    /// First retry delay after a failed mail delivery, in seconds; doubles per try.
    #[arg(long, env = "EMETERAI_MAIL_RETRY_BASE_SECS", value_name = "EMETERAI_MAIL_RETRY_BASE_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub mail_retry_base_secs: u64,

    /// Longest delay between two delivery tries, in seconds.
    #[arg(long, env = "EMETERAI_MAIL_RETRY_MAX_SECS", value_name = "EMETERAI_MAIL_RETRY_MAX_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub mail_retry_max_secs: u64,

    /// Delivery tries before a mail is marked failed.
    #[arg(long, env = "EMETERAI_MAIL_MAX_ATTEMPTS", value_name = "EMETERAI_MAIL_MAX_ATTEMPTS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub mail_max_attempts: u32,

    /// Seconds between looks at the outbox (new mail is also sent at once).
    #[arg(long, env = "EMETERAI_MAIL_POLL_SECS", value_name = "EMETERAI_MAIL_POLL_SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub mail_poll_secs: u64,

    /// Password hashes computed at once (bcrypt is slow by design); default one per core.
    #[arg(long, env = "EMETERAI_HASH_CONCURRENCY", value_name = "EMETERAI_HASH_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub hash_concurrency: Option<u16>,

    /// Longest wait for a password hash before the citizen is told to try again (503); sizes the
    /// hashing queues from the hash time measured at start-up.
    #[arg(long, env = "EMETERAI_HASH_MAX_WAIT_MS", value_name = "EMETERAI_HASH_MAX_WAIT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub hash_max_wait_ms: u64,

    /// Hashing requests that may wait per class (sign-in, new password); overrides the size
    /// computed from EMETERAI_HASH_MAX_WAIT_MS.
    #[arg(long, env = "EMETERAI_HASH_QUEUE", value_name = "EMETERAI_HASH_QUEUE", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub hash_queue: Option<u32>,

    /// Minutes a password-reset link stays valid.
    #[arg(long, env = "EMETERAI_RESET_TOKEN_TTL_MINUTES", value_name = "EMETERAI_RESET_TOKEN_TTL_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(5..=1440))]
    pub reset_token_ttl_minutes: u32,

    /// Enumeration-safe mode: a registration for an address or NIK that already has an account
    /// ends on the check-your-email page, and the guidance goes by mail instead.
    #[arg(long, env = "EMETERAI_ENUMERATION_SAFE", value_name = "EMETERAI_ENUMERATION_SAFE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enumeration_safe: bool,

    /// Registrations (and draft photos) stored per client address per hour. Carrier-grade NAT puts
    /// many citizens behind one address: see the README for how the default was chosen.
    #[arg(long, env = "EMETERAI_REGISTRATIONS_PER_IP_HOUR", value_name = "EMETERAI_REGISTRATIONS_PER_IP_HOUR", default_value_t = 300, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub registrations_per_ip_hour: i64,

    /// Megabytes of KTP photos that no account owns yet (drafts and registrations waiting for their
    /// password) before new ones are refused with the 503 page.
    #[arg(long, env = "EMETERAI_UPLOAD_BUDGET_MB", value_name = "EMETERAI_UPLOAD_BUDGET_MB", default_value_t = 20_480, value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    pub upload_budget_mb: i64,

    /// With SQLite: free space (MB) the database's disk must keep; below it the instance is unready
    /// and sign-ups get the 503 page rather than a write that fails half-way.
    #[arg(long, env = "EMETERAI_MIN_FREE_DISK_MB", value_name = "EMETERAI_MIN_FREE_DISK_MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub min_free_disk_mb: u64,

    /// Wrong passwords for one account (citizen) within EMETERAI_SIGNIN_LOCK_MINUTES before its
    /// sign-in is paused for the rest of that window and its owner gets a mail.
    #[arg(long, env = "EMETERAI_SIGNIN_ATTEMPTS", value_name = "EMETERAI_SIGNIN_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub signin_attempts: i64,

    /// The window of EMETERAI_SIGNIN_ATTEMPTS, in minutes (also how long the pause lasts at most).
    #[arg(long, env = "EMETERAI_SIGNIN_LOCK_MINUTES", value_name = "EMETERAI_SIGNIN_LOCK_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(i64).range(1..=1440))]
    pub signin_lock_minutes: i64,

    /// Sign-in attempts (citizens and staff) per client address per hour; set for carrier-grade NAT.
    #[arg(long, env = "EMETERAI_SIGNIN_PER_IP_HOUR", value_name = "EMETERAI_SIGNIN_PER_IP_HOUR", default_value_t = 600, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub signin_per_ip_hour: i64,

    /// Staff sign-in asks for a code from an authenticator app (TOTP) after the password:
    /// `required`, or `off` (an explicit choice, e.g. for a closed test system).
    #[arg(long, env = "EMETERAI_STAFF_SECOND_FACTOR", value_name = "EMETERAI_STAFF_SECOND_FACTOR", default_value = "required", value_parser = ["required", "off"])]
    pub staff_second_factor: String,

    /// Answers that reveal an existing account ("already registered") and password-reset requests,
    /// per client IP per hour.
    #[arg(long, env = "EMETERAI_RATE_LIMIT_PER_IP_HOUR", value_name = "EMETERAI_RATE_LIMIT_PER_IP_HOUR", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub rate_limit_per_ip_hour: i64,

    /// The same, per email address per hour.
    #[arg(long, env = "EMETERAI_RATE_LIMIT_PER_EMAIL_HOUR", value_name = "EMETERAI_RATE_LIMIT_PER_EMAIL_HOUR", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub rate_limit_per_email_hour: i64,

    /// The shared secret the mail provider signs delivery events with (HMAC-SHA256 of the body,
    /// header `X-Emeterai-Signature: sha256=<hex>`); unset: POST /hooks/mail-events refuses all.
    #[arg(
        long,
        env = "EMETERAI_MAIL_WEBHOOK_SECRET",
        value_name = "EMETERAI_MAIL_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub mail_webhook_secret: Option<String>,

    /// Days a mail's "not me" link works (cancel a registration one never made, or secure an account).
    #[arg(long, env = "EMETERAI_NOT_ME_TTL_DAYS", value_name = "EMETERAI_NOT_ME_TTL_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub not_me_ttl_days: u32,

    /// "Which address did I use?" reminders per NIK and per address per hour.
    #[arg(long, env = "EMETERAI_REMIND_PER_HOUR", value_name = "EMETERAI_REMIND_PER_HOUR", default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub remind_per_hour: i64,

    /// Hours staff have to answer a "someone else used my NIK" case (the queue shows overdue ones first).
    #[arg(long, env = "EMETERAI_CASE_ANSWER_HOURS", value_name = "EMETERAI_CASE_ANSWER_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub case_answer_hours: u32,

    /// "Someone else used my NIK" reports per NIK and per contact address per day (and EMETERAI_REGISTRATIONS_PER_IP_HOUR per client).
    #[arg(long, env = "EMETERAI_REPORTS_PER_DAY", value_name = "EMETERAI_REPORTS_PER_DAY", default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub reports_per_day: i64,

    /// Days between a citizen's "delete my account" and its deletion (signing in or the mailed link cancels it meanwhile).
    #[arg(long, env = "EMETERAI_DELETION_WAIT_DAYS", value_name = "EMETERAI_DELETION_WAIT_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub deletion_wait_days: u32,

    /// Downloads of their own data a citizen may make per day.
    #[arg(long, env = "EMETERAI_EXPORTS_PER_DAY", value_name = "EMETERAI_EXPORTS_PER_DAY", default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub exports_per_day: i64,

    /// Days a closed case is kept before the purge deletes it and shreds its data key.
    #[arg(long, env = "EMETERAI_CASE_RETENTION_DAYS", value_name = "EMETERAI_CASE_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub case_retention_days: u32,

    /// Days failed-registration records are kept before the purge deletes them.
    #[arg(long, env = "EMETERAI_FAILURE_RETENTION_DAYS", value_name = "EMETERAI_FAILURE_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub failure_retention_days: u32,

    /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "EMETERAI_TRUST_PROXY", value_name = "EMETERAI_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_proxy: bool,

    /// Log format: `text` or `json`. Verbosity follows RUST_LOG (default `info`).
    #[arg(
        long,
        env = "EMETERAI_LOG_FORMAT",
        value_name = "EMETERAI_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// Written by hand, not derived: the secrets (the secret key, the PKCS#11
/// PIN, the mail API key, the webhook secret) and the passwords a database
/// or SMTP URL may carry never reach a log line or a panic message. It
/// shows whether each is set, and the settings an operator compares.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |value: &Option<String>| if value.is_some() { "set" } else { "unset" };
        let database = if self.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        f.debug_struct("Settings")
            .field("database", &database)
            .field("bind", &self.bind)
            .field("base_url", &self.base_url)
            .field("environment", &self.environment)
            .field("secret_key", &set(&self.secret_key))
            .field("key_file", &self.key_file)
            .field("pkcs11_pin", &set(&self.pkcs11_pin))
            .field("mail_api_url", &set(&self.mail_api_url))
            .field("mail_api_key", &set(&self.mail_api_key))
            .field("smtp_url", &set(&self.smtp_url))
            .field("mail_webhook_secret", &set(&self.mail_webhook_secret))
            .field("db_pool_size", &self.db_pool_size)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("EMETERAI_SECRET_KEY must be set when EMETERAI_ENV=production")]
    MissingSecret,
    #[error("EMETERAI_SECRET_KEY must be at least 32 characters long")]
    ShortSecret,
    #[error(
        "EMETERAI_MAIL_API_URL or EMETERAI_SMTP_URL must be set when EMETERAI_ENV=production (without one, mail with its links would go to the log)"
    )]
    MissingMailTransport,
    #[error(
        "EMETERAI_KEY_FILE must be set when EMETERAI_ENV=production (the key file that seals citizens' data at rest)"
    )]
    MissingKeyFile,
    #[error("EMETERAI_KEY_FILE ({path}): {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("cannot keep the development secret key in {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Settings {
    /// The defaults of every setting, ignoring the process environment: the
    /// same values `--help` shows. Tests and tools start from these.
    pub fn defaults() -> Self {
        use clap::FromArgMatches;
        let command = Self::augment_args(clap::Command::new("emeterai"))
            .mut_args(|arg| arg.env(clap::builder::Resettable::Reset));
        let matches = command
            .try_get_matches_from(["emeterai"])
            .expect("the built-in defaults parse");
        Self::from_arg_matches(&matches).expect("the built-in defaults are valid")
    }

    /// The defaults with another database and data directory.
    /// Whether staff need the second factor (see `staff_second_factor`).
    pub fn staff_second_factor_required(&self) -> bool {
        self.staff_second_factor != "off"
    }

    pub fn with_database(database_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            database_url: database_url.into(),
            data_dir: data_dir.into(),
            ..Self::defaults()
        }
    }

    /// The largest registration body read: a photo up to twice the upload
    /// limit is still read to the end (and dropped), so that the form comes
    /// back with every answer; beyond this the request gets the 413 page.
    pub fn register_body_limit(&self) -> u64 {
        self.ktp_upload_max_bytes.saturating_mul(2) + 1024 * 1024
    }

    pub fn db_timeout(&self) -> Duration {
        Duration::from_secs(self.db_timeout_secs)
    }

    /// The failover behaviour of PostgreSQL connections (`db::PgTuning`).
    pub fn pg_tuning(&self) -> crate::db::PgTuning {
        crate::db::PgTuning {
            connect_timeout_secs: self.db_connect_timeout_secs,
            keepalive_secs: self.db_keepalive_secs,
            statement_timeout_secs: self.db_statement_timeout_secs,
        }
    }

    /// One connection for a maintenance command (`migrate`, `keys`,
    /// `backup`): no statement timeout, the same failover behaviour.
    pub fn maintenance_pool(&self) -> Result<(crate::db::DbUrl, crate::db::Pool), String> {
        let url = crate::db::DbUrl::parse(&self.database_url).map_err(|e| e.to_string())?;
        let tuning = crate::db::PgTuning {
            statement_timeout_secs: 0,
            ..self.pg_tuning()
        };
        let pool = crate::db::build_pool(&url, 1, self.db_timeout(), &tuning)
            .map_err(|e| e.to_string())?;
        Ok((url, pool))
    }

    /// Cookies get the `Secure` flag when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.base_url.starts_with("https://")
    }

    /// Settings that must go together, checked before anything starts.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.environment == Environment::Production
            && self.mail_api_url.is_none()
            && self.smtp_url.is_none()
        {
            return Err(ConfigError::MissingMailTransport);
        }
        Ok(())
    }

    /// The key used to sign cookies and tokens. Outside development it must be
    /// configured; in development it is generated once and kept on disk so that
    /// sessions survive restarts.
    pub fn load_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(key) = &self.secret_key {
            if key.chars().count() < 32 {
                return Err(ConfigError::ShortSecret);
            }
            return Ok(key.as_bytes().to_vec());
        }
        if self.environment == Environment::Production {
            return Err(ConfigError::MissingSecret);
        }
        let path = self.data_dir.join("secret.key");
        read_or_create_secret(&path).map_err(|source| ConfigError::SecretFile { path, source })
    }
}

impl Settings {
    /// Where the key file is: the setting, or in development the data
    /// directory's `keys.txt`.
    pub fn key_file_path(&self) -> Result<PathBuf, ConfigError> {
        match &self.key_file {
            Some(path) => Ok(path.clone()),
            None if self.environment == Environment::Production => Err(ConfigError::MissingKeyFile),
            None => Ok(self.data_dir.join("keys.txt")),
        }
    }

    /// The key ring sealing citizens' data: read from the key file; in
    /// development a missing default file is generated (mode 0600).
    pub fn load_keys(&self) -> Result<crate::domain::sealed::KeyRing, ConfigError> {
        let ring = self.read_keys(true)?;
        let again = self.clone();
        Ok(ring.with_reload(Box::new(move || {
            again.read_keys(false).map_err(|e| e.to_string())
        })))
    }

    /// The key file as it is now; in development, made when missing and
    /// `generate` (never when read again: a new file would hold new keys).
    fn read_keys(&self, generate: bool) -> Result<crate::domain::sealed::KeyRing, ConfigError> {
        let path = self.key_file_path()?;
        let fail = |reason: String| ConfigError::KeyFile {
            path: path.clone(),
            reason,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e)
                if generate
                    && e.kind() == std::io::ErrorKind::NotFound
                    && self.key_file.is_none() =>
            {
                let text = crate::domain::sealed::KeyRing::new_file_text();
                write_private(&path, &text).map_err(|e| fail(e.to_string()))?;
                text
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let mut token: Option<std::sync::Arc<crate::pkcs11::Token>> = None;
        let mut find = |label: &str| -> Result<Box<dyn crate::domain::sealed::TokenKek>, String> {
            if token.is_none() {
                token = Some(crate::pkcs11::Token::open(&self.pkcs11_config()?)?);
            }
            token.as_ref().expect("opened above").key(label)
        };
        crate::domain::sealed::KeyRing::parse_with(&text, &mut find)
            .map_err(|e| fail(e.to_string()))
    }

    /// The PKCS#11 token's settings, all three needed.
    pub fn pkcs11_config(&self) -> Result<crate::pkcs11::TokenConfig, String> {
        match (&self.pkcs11_module, &self.pkcs11_token, &self.pkcs11_pin) {
            (Some(module), Some(token), Some(pin)) => Ok(crate::pkcs11::TokenConfig {
                module: module.clone(),
                token: token.clone(),
                pin: pin.clone(),
            }),
            _ => Err(
                "EMETERAI_PKCS11_MODULE, EMETERAI_PKCS11_TOKEN and EMETERAI_PKCS11_PIN must be set for a pkcs11: key"
                    .into(),
            ),
        }
    }
}

/// Writes a file only its owner may read (keys).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn read_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(existing) if existing.trim().len() >= 32 => {
            return Ok(existing.trim().as_bytes().to_vec());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    write_private(path, &key)?;
    Ok(key.into_bytes())
}

fn parse_http_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| "must start with http:// or https://".to_string())?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err("must name a host, e.g. https://portal.example.go.id".into());
    }
    Ok(value.to_string())
}

fn parse_base_url(value: &str) -> Result<String, String> {
    parse_http_url(value).map(|v| v.trim_end_matches('/').to_string())
}

fn parse_digits(value: &str) -> Result<String, String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        Ok(value.to_string())
    } else {
        Err("must be digits only, with the country code (e.g. 628119590159)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_loses_trailing_slash_and_needs_a_scheme() {
        assert_eq!(
            parse_base_url("https://x.go.id/").unwrap(),
            "https://x.go.id"
        );
        assert!(parse_base_url("x.go.id").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut s = Settings::defaults();
        s.database_url = "postgres://portal:db-pass-1@db1,db2/emeterai".into();
        s.secret_key = Some("secret-key-2".repeat(4));
        s.pkcs11_pin = Some("pin-3".into());
        s.mail_api_key = Some("api-key-4".into());
        s.smtp_url = Some("smtp://mailer:smtp-pass-5@mail.example".into());
        s.mail_webhook_secret = Some("hook-6".into());
        let shown = format!("{s:?}");
        for secret in [
            "db-pass-1",
            "secret-key-2",
            "pin-3",
            "api-key-4",
            "smtp-pass-5",
            "hook-6",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains(r#"database: "postgres""#), "{shown}");
        assert!(shown.contains(r#"pkcs11_pin: "set""#), "{shown}");
        assert!(shown.contains(r#"mail_api_key: "set""#), "{shown}");
    }

    #[test]
    fn production_needs_a_secret() {
        let mut s = Settings::defaults();
        s.environment = Environment::Production;
        assert!(matches!(s.load_secret(), Err(ConfigError::MissingSecret)));
        // Production never prints mail (with its links) to the log.
        assert!(matches!(s.check(), Err(ConfigError::MissingMailTransport)));
        s.mail_api_url = Some("https://mail.example.go.id/send".into());
        assert!(s.check().is_ok());
        s.secret_key = Some("short".into());
        assert!(matches!(s.load_secret(), Err(ConfigError::ShortSecret)));
        s.secret_key = Some("x".repeat(40));
        assert_eq!(s.load_secret().unwrap().len(), 40);
    }

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::defaults();
        s.data_dir = dir.path().join("nested");
        let first = s.load_secret().unwrap();
        let second = s.load_secret().unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
    }
}
