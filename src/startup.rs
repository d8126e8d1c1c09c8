//! Building and running the application: the state shared by every worker,
//! the middleware stack and the HTTP server. Binding to port 0 gives a free
//! port, which the tests use.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{Compress, DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};

use crate::assets::Assets;
use crate::config::{ConfigError, Settings};
use crate::db::{self, DbError, DbUrl};
use crate::metrics::Metrics;
pub use crate::state::AppState;
use crate::state::Contact;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot build the mail client: {0}")]
    Mail(String),
    #[error("cannot prepare password hashing: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Content-Security-Policy: our own files only, no inline scripts or styles,
/// no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Checks the settings, opens the database, runs the migrations and
    /// binds the listener. Nothing is served until `run_until_stopped`.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        settings.check()?;
        let secret = settings.load_secret()?;
        let keys = Arc::new(settings.load_keys()?);
        let db_url = DbUrl::parse(&settings.database_url)?;
        let pool = db::build_pool(
            &db_url,
            settings.db_pool_size,
            settings.db_timeout(),
            &settings.pg_tuning(),
        )?;
        let applied = db::migrate(&pool)?;
        tracing::info!(backend = db_url.backend_name(), applied, "database ready");
        let failure_log = crate::services::failures::FailureLog::new(&secret);
        {
            let mut conn = pool.get().map_err(DbError::from)?;
            let filled = db::accounts::backfill_nik_hashes(&mut conn, &keys, |nik| {
                failure_log.nik_hash(nik)
            })
            .map_err(|e| DbError::Migrate(e.to_string()))?;
            if filled > 0 {
                tracing::info!(filled, "NIK hashes filled for older accounts");
            }
        }

        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind,
                source,
            })?
            .port();

        let contact = Contact {
            phone: settings.contact_phone.clone(),
            whatsapp: settings.contact_whatsapp.clone(),
            email: settings.contact_email.clone(),
        };
        let workers = settings
            .workers
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let shutdown_timeout = settings.shutdown_timeout_secs;
        let hash_concurrency = settings
            .hash_concurrency
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        // The dummy hash doubles as the measurement that sizes the queues.
        let started = std::time::Instant::now();
        let dummy_hash = bcrypt::hash("not a real password", settings.bcrypt_cost)?;
        let per_hash = started.elapsed();
        let hash_queue = settings.hash_queue.map_or_else(
            || {
                crate::hashing::HashPool::queue_for(
                    hash_concurrency,
                    per_hash,
                    std::time::Duration::from_millis(settings.hash_max_wait_ms),
                )
            },
            |n| n as usize,
        );
        tracing::info!(
            threads = hash_concurrency,
            queue = hash_queue,
            hash_ms = per_hash.as_millis() as u64,
            cost = settings.bcrypt_cost,
            "password hashing pool ready"
        );
        let wake_mailer = Arc::new(tokio::sync::Notify::new());
        let clock = crate::clock::Clock::system();
        let state = web::Data::new(AppState {
            status: crate::services::status::Board::new(clock.now()),
            mailer: crate::mail::Mailer::new(&settings).map_err(StartupError::Mail)?,
            wake_mailer: wake_mailer.clone(),
            common_passwords: crate::domain::CommonPasswords::load(),
            hash_pool: crate::hashing::HashPool::new(hash_concurrency, hash_queue),
            photo_permits: tokio::sync::Semaphore::new(
                settings
                    .photo_concurrency
                    .map(usize::from)
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            ),
            dummy_hash,
            staff_cookie_key: actix_web::cookie::Key::derive_from(
                failure_log.keyed_hash("staff-cookie", "v1").as_bytes(),
            ),
            totp_key: crate::services::staff::sign_in::sealing_key(&failure_log),
            failures: failure_log,
            unowned_upload_bytes: std::sync::atomic::AtomicI64::new(0),
            settings,
            pool,
            sqlite_identity: db::sqlite_identity(&db_url),
            db_url,
            assets: Assets::load(),
            metrics: Metrics::new(),
            clock,
            keys,
            contact,
            secret,
        });

        // Idle sockets must meet a cap below the open-file limit, or the
        // process runs out of files and ordinary visitors time out.
        let open_files = raise_open_file_limit();
        let max_connections = state.settings.max_connections.map_or_else(
            || open_files.saturating_sub(256).clamp(64, 100_000) as usize,
            |n| n as usize,
        );
        tracing::info!(open_files, max_connections, "connection limits");
        let header_timeout = std::time::Duration::from_secs(state.settings.header_timeout_secs);
        let keep_alive = state.settings.keep_alive_secs;
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(crate::routes::configure)
                .default_service(web::to(crate::routes::not_found))
                .wrap(from_fn(crate::telemetry::limit_body))
                .wrap(crate::session::middleware(
                    &app_state.secret,
                    app_state.settings.secure_cookies(),
                ))
                .wrap(ErrorHandlers::new().default_handler(crate::errors::error_page))
                .wrap(security_headers(app_state.settings.secure_cookies()))
                .wrap(Compress::default())
                .wrap(from_fn(crate::telemetry::observe))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: state.settings.bind,
            source,
        })?
        .workers(workers)
        .max_connections((max_connections / workers).max(16))
        .client_request_timeout(header_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        .keep_alive(match keep_alive {
            0 => actix_web::http::KeepAlive::Disabled,
            secs => actix_web::http::KeepAlive::Timeout(std::time::Duration::from_secs(secs)),
        })
        .shutdown_timeout(shutdown_timeout)
        .run();

        actix_web::rt::spawn(crate::worker::run_worker(state.clone(), wake_mailer));
        actix_web::rt::spawn(crate::worker::run_status(state.clone()));
        tracing::info!(port, workers, "listening");
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server (tests; signals are handled by actix:
    /// SIGTERM and SIGINT stop accepting, let requests in flight finish
    /// within the shutdown timeout, then exit).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Raises the soft open-file limit to the hard one (Linux starts many
/// services at 1,024) and returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return raised.rlim_cur;
                }
            }
            return limit.rlim_cur;
        }
    }
    1024
}

/// Headers on every response. `Cache-Control: no-store` applies to whatever
/// does not set its own (pages); static files set theirs.
fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add((header::CACHE_CONTROL, "no-store"));
    if https {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}
