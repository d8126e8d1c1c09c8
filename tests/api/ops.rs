use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

async fn healthz_answers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, body) = app.get_html("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok\n");
}

async fn readyz_reports_the_backend(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, body) = app.get_html("/readyz").await;
    assert_eq!(status, 200);
    let expected = match backend {
        Backend::Sqlite => "ready: sqlite\n",
        Backend::Postgres => "ready: postgres\n",
    };
    assert_eq!(body, expected);
}

async fn readyz_is_503_when_the_database_is_gone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.db.destroy();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // The process itself is still alive.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.get("/").await;
    app.get("/").await;
    app.get("/nothing-here/12345").await;
    let (status, body) = app.get_html("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"emeterai_http_requests_total{method="GET",route="/",status="200"} 2"#),
        "{body}"
    );
    assert!(
        body.contains(r#"route="unmatched",status="404"} 1"#),
        "{body}"
    );
    // Raw paths never become labels.
    assert!(!body.contains("nothing-here"));
    assert!(body.contains("emeterai_http_request_duration_seconds_bucket"));
    assert!(body.contains("emeterai_db_pool_max_connections 10"));
}

async fn server_stops_gracefully(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
    // A new visitor (a new connection) is no longer served.
    let fresh = app.new_browser();
    assert!(fresh.get(app.url("/healthz")).send().await.is_err());
}

on_both_backends!(
    healthz_answers,
    readyz_reports_the_backend,
    readyz_is_503_when_the_database_is_gone,
    metrics_count_requests_by_route_and_status,
    server_stops_gracefully,
);

#[derive(diesel::QueryableByName)]
struct SslInUse {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

/// Managed PostgreSQL services require TLS: the bundled libpq must speak it.
#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn postgres_with_sslmode_require_uses_tls() {
    use diesel::RunQueryDsl;
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| {
        s.database_url.push_str("?sslmode=require");
    })
    .await
    else {
        return;
    };
    let (status, body) = app.get_html("/readyz").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ready: postgres\n"));
    let mut conn = app.state.pool.get().unwrap();
    let row: SslInUse =
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .get_result(&mut *conn)
            .expect("pg_stat_ssl");
    assert!(row.ssl, "the connection is not encrypted");
}

/// A SQLite file removed, replaced or made read-only under the running
/// instance: `/readyz` answers 503 and no sign-up is acknowledged (it would
/// be lost at the next restart, or fail later).
#[actix_web::test]
async fn sqlite_file_removed_replaced_or_read_only_is_unready_and_refuses_sign_ups() {
    use crate::helpers::Registration;
    use std::os::unix::fs::PermissionsExt;
    for fault in ["removed", "replaced", "read-only"] {
        let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
            return;
        };
        assert_eq!(app.get("/readyz").await.status(), 200);
        let path = std::path::PathBuf::from(&app.db.url);
        match fault {
            "removed" => std::fs::remove_file(&path).unwrap(),
            "replaced" => {
                let copy = path.with_extension("copy");
                std::fs::copy(&path, &copy).unwrap();
                std::fs::remove_file(&path).unwrap();
                std::fs::rename(&copy, &path).unwrap();
            }
            _ => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap(),
        }
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), 503, "{fault}");
        let response = app.register(&mut Registration::default()).await;
        assert_eq!(response.status(), 503, "{fault}: sign-up acknowledged");
        let html = response.text().await.unwrap();
        assert!(html.contains("Layanan sedang sibuk"), "{fault}: {html}");
    }
}

/// A SQLite disk with less free space than EMETERAI_MIN_FREE_DISK_MB (here
/// more than any test machine has) is unready, and sign-ups get the 503
/// page instead of a write that could fail half-way.
#[actix_web::test]
async fn a_nearly_full_sqlite_disk_is_unready_and_refuses_sign_ups() {
    use crate::helpers::Registration;
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| s.min_free_disk_mb = 10_000_000).await
    else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 503);
    crate::helpers::busy_page(app.register(&mut Registration::default()).await).await;
}

/// A write refused for a full disk is a storage fault (503 page), not a 500.
#[test]
fn a_full_database_error_is_unavailable() {
    use diesel::result::{DatabaseErrorKind, Error};
    struct Info(&'static str);
    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }
    for message in [
        "database or disk is full",
        "could not extend file \"base/16384/2619\": No space left on device",
        "attempt to write a readonly database",
    ] {
        let error = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(Info(message)));
        let error = emeterai::errors::AppError::from(error);
        assert!(
            matches!(error, emeterai::errors::AppError::Unavailable(_)),
            "{message}: {error:?}"
        );
    }
}

/// Every metric the alert rules and the Grafana dashboard under `deploy/`
/// read is one the portal exports (a renamed metric would silence an alert).
#[actix_web::test]
async fn the_alert_rules_and_dashboard_read_only_exported_metrics() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    app.get("/").await;
    emeterai::worker::refresh_status(&app.state).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mut families: std::collections::BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    assert!(families.contains("emeterai_ready") && families.contains("emeterai_hash_rejected"));
    let root = env!("CARGO_MANIFEST_DIR");
    // Families with labels show only once they have a series (data keys
    // per KEK version appear after the first key maintenance): those count
    // as exported when `metrics.rs` registers them.
    let source = std::fs::read_to_string(format!("{root}/src/metrics.rs")).unwrap();
    for chunk in source.split("registry.register(").skip(1) {
        if let Some(name) = chunk.split('"').nth(1) {
            families.insert(format!("emeterai_{name}"));
        }
    }
    let mut checked = 0;
    for file in [
        "deploy/prometheus/emeterai-alerts.yml",
        "deploy/grafana/emeterai-dashboard.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("emeterai_") {
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            let family = name
                .strip_suffix("_total")
                .or_else(|| name.strip_suffix("_bucket"))
                .unwrap_or(name);
            assert!(
                families.contains(family),
                "{file} reads {name}, which /metrics does not export"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "the files name the metrics they read");
}
