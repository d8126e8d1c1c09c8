//! Prometheus metrics, one registry per application (no global), served at
//! `GET /metrics` in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KekLabels {
    pub kek_version: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailEventLabels {
    /// delivered, deferred, soft_bounced, bounced, complained, duplicate,
    /// unknown_mail, refused (a bad signature).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HashClassLabels {
    pub class: String,
}

pub struct Metrics {
    registry: Registry,
    upload_bytes: Gauge,
    upload_budget_bytes: Gauge,
    hash_rejected: Family<HashClassLabels, Counter>,
    hash_waiting: Family<HashClassLabels, Gauge>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    data_keys: Family<KekLabels, Gauge>,
    photos_in_clear: Gauge,
    kek_newest: Gauge,
    mail_events: Family<MailEventLabels, Counter>,
    ready: Gauge,
    mail_oldest_pending: Gauge,
    status: Family<PartLabels, Gauge>,
    connections_retired: Counter,
    /// Totals the status page judges by (`services::status`).
    pub server_errors: AtomicU64,
    signin_rejected: AtomicU64,
    new_password_rejected: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabels {
    pub part: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("emeterai");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route pattern and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern",
            latency.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections open in the pool",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Open database connections not in use",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Largest number of database connections the pool may open",
            pool_max.clone(),
        );
        let hash_rejected = Family::<HashClassLabels, Counter>::default();
        registry.register(
            "hash_rejected",
            "Password hashing requests refused at once because their queue was full (503)",
            hash_rejected.clone(),
        );
        let hash_waiting = Family::<HashClassLabels, Gauge>::default();
        registry.register(
            "hash_waiting",
            "Password hashing requests waiting for a thread, by class",
            hash_waiting.clone(),
        );
        let upload_bytes = Gauge::default();
        registry.register(
            "upload_unowned_bytes",
            "Bytes of KTP photos no account owns yet (drafts, registrations waiting for a password)",
            upload_bytes.clone(),
        );
        let upload_budget_bytes = Gauge::default();
        registry.register(
            "upload_budget_bytes",
            "The budget for those bytes; new uploads are refused (503) beyond it",
            upload_budget_bytes.clone(),
        );
        let data_keys = Family::<KekLabels, Gauge>::default();
        registry.register(
            "data_keys",
            "Data keys by the key-encryption key version that wraps them (rotation: all under the newest)",
            data_keys.clone(),
        );
        let photos_in_clear = Gauge::default();
        registry.register(
            "rows_in_clear",
            "Rows holding identity data in clear (KTP photos, registrations, accounts, failure rows, mails) from an earlier version, not yet sealed",
            photos_in_clear.clone(),
        );
        let kek_newest = Gauge::default();
        registry.register(
            "kek_newest_version",
            "The key-encryption key version this instance wraps new data keys under",
            kek_newest.clone(),
        );
        let mail_events = Family::<MailEventLabels, Counter>::default();
        registry.register(
            "mail_events",
            "Delivery events the mail provider reported, by kind (and those ignored or refused)",
            mail_events.clone(),
        );
        // Both classes from the start, at 0: a rate over a series that
        // appears only with the first rejection would miss it.
        for class in [
            crate::hashing::Class::SignIn,
            crate::hashing::Class::NewPassword,
        ] {
            drop(hash_rejected.get_or_create(&HashClassLabels {
                class: class.label().to_string(),
            }));
        }
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while this instance can serve (a primary database answers, storage is sound), else 0",
            ready.clone(),
        );
        let mail_oldest_pending = Gauge::default();
        registry.register(
            "mail_oldest_pending_seconds",
            "Seconds the oldest mail waiting in the outbox has waited (0: none waits)",
            mail_oldest_pending.clone(),
        );
        let status = Family::<PartLabels, Gauge>::default();
        registry.register(
            "status",
            "What the public status page says of each part: 0 normal, 1 slow, 2 down",
            status.clone(),
        );
        let connections_retired = Counter::default();
        registry.register(
            "db_connections_retired",
            "Database connections closed because their server was gone or read-only (a failover)",
            connections_retired.clone(),
        );
        Metrics {
            ready,
            mail_oldest_pending,
            status,
            connections_retired,
            server_errors: AtomicU64::new(0),
            signin_rejected: AtomicU64::new(0),
            new_password_rejected: AtomicU64::new(0),
            mail_events,
            data_keys,
            photos_in_clear,
            kek_newest,
            registry,
            upload_bytes,
            upload_budget_bytes,
            hash_rejected,
            hash_waiting,
            requests,
            latency,
            pool_connections,
            pool_idle,
            pool_max,
        }
    }

    /// What the key maintenance last measured (`services::keys`).
    pub fn set_keys(&self, newest: i32, by_version: &[(i32, i64)], in_clear: i64) {
        self.kek_newest.set(i64::from(newest));
        self.data_keys.clear();
        for (version, count) in by_version {
            self.data_keys
                .get_or_create(&KekLabels {
                    kek_version: *version,
                })
                .set(*count);
        }
        self.photos_in_clear.set(in_clear);
    }

    pub fn mail_event(&self, kind: &str) {
        self.mail_events
            .get_or_create(&MailEventLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// What the status page judged (`worker::run_status`): readiness, the
    /// oldest waiting mail's age, and each part's level (0, 1, 2).
    pub fn set_status(&self, ready: bool, oldest_mail_secs: i64, levels: [(&'static str, i64); 3]) {
        self.ready.set(i64::from(ready));
        self.mail_oldest_pending.set(oldest_mail_secs);
        for (part, value) in levels {
            self.status.get_or_create(&PartLabels { part }).set(value);
        }
    }

    /// (sign-in, new password) requests the hashing queue turned away.
    pub fn hash_rejected_totals(&self) -> (u64, u64) {
        (
            self.signin_rejected.load(Ordering::Relaxed),
            self.new_password_rejected.load(Ordering::Relaxed),
        )
    }

    pub fn hash_rejected(&self, class: crate::hashing::Class) {
        match class {
            crate::hashing::Class::SignIn => &self.signin_rejected,
            crate::hashing::Class::NewPassword => &self.new_password_rejected,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.hash_rejected
            .get_or_create(&HashClassLabels {
                class: class.label().to_string(),
            })
            .inc();
    }

    /// Encodes every metric, with the gauges read at this moment.
    pub fn encode(
        &self,
        pool: &crate::db::Pool,
        hashing: &crate::hashing::HashPool,
        uploads: (i64, i64),
    ) -> Result<String, std::fmt::Error> {
        self.upload_bytes.set(uploads.0);
        self.upload_budget_bytes.set(uploads.1);
        use crate::hashing::Class;
        for class in [Class::SignIn, Class::NewPassword] {
            self.hash_waiting
                .get_or_create(&HashClassLabels {
                    class: class.label().to_string(),
                })
                .set(hashing.waiting(class) as i64);
        }
        let retired = crate::db::RETIRED.load(Ordering::Relaxed);
        self.connections_retired
            .inc_by(retired.saturating_sub(self.connections_retired.get()));
        let state = pool.state();
        self.pool_connections.set(i64::from(state.connections));
        self.pool_idle.set(i64::from(state.idle_connections));
        self.pool_max.set(i64::from(pool.max_size()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
