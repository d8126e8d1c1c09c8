//! PostgreSQL failover, as the portal sees it: a first host that went
//! silent is given up for the next one, a connection to a server that is
//! now read-only is closed instead of being handed out again, and while
//! no primary answers the portal is unready, sign-ups get the 503 page with
//! their answers kept, and everything carries on once one answers.
//! (The whole rehearsal with a real standby: `deploy/failover.sh`.)

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::helpers::{Backend, Registration, TestApp, TestDb, host_port};

/// A host that accepts TCP connections and never says a word, as a
/// database server behind a network partition looks to a new connection.
fn silent_host() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// `postgres://user@h1:p1,h2:p2/db?…`: the test database behind `first`.
fn two_hosts(url: &str, first: &str) -> String {
    let real = host_port(url).to_string();
    crate::helpers::with_host_port(url, &format!("{first},{real}"))
}

/// Runs `sql` as the admin of TEST_DATABASE_URL, with `{db}` replaced by
/// the name of the test database `url` names.
fn admin_sql(url: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl, pg::PgConnection};
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let mut conn = PgConnection::establish(&admin).unwrap();
    diesel::sql_query(sql.replace("{db}", name))
        .execute(&mut conn)
        .unwrap();
}

async fn wait_until(mut ready: impl AsyncFnMut() -> bool, what: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if ready().await {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} within 30 s");
}

#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn a_silent_first_host_is_given_up_for_the_next() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let (_silent, first) = silent_host();
    let url = two_hosts(&db.url, &first);
    let started = Instant::now();
    let Some(app) = TestApp::spawn_on(db, |s| {
        s.database_url = url;
        s.db_connect_timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    // Without a connect timeout libpq waits on the first host for ever.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "start-up took {:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.wait_for_mail("siti.aminah@example.co.id", 1)
            .await
            .len(),
        1
    );
}

#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn a_connection_to_a_read_only_server_is_closed_not_handed_out_again() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| s.db_pool_size = 1).await else {
        return;
    };
    // The pool's only connection finds its server read-only, as one to a
    // primary that was demoted to a standby does (SQLSTATE 25006).
    {
        let mut conn = app.state.pool.get().unwrap();
        conn.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .unwrap();
    }
    let browser = app.new_browser();
    let mut siti = Registration::default();
    let first = app.register_in(&browser, &mut siti).await;
    // The background work (outbox, key maintenance) may meet the
    // read-only connection first; then this sign-up already gets a new one.
    if first.status() == 503 {
        crate::helpers::busy_page(first).await;
        // The answers are kept: "try again" brings the form back filled in.
        let form = crate::helpers::html_of(&browser, app.url("/register")).await;
        assert!(form.contains("siti.aminah@example.co.id"), "{form}");
        assert!(form.contains("Siti Aminah"));
        // The read-only connection was closed: the next try writes.
        let mut again = Registration::default();
        let second = app.register_in(&browser, &mut again).await;
        assert_eq!(second.status(), 303);
    } else {
        assert_eq!(first.status(), 303);
    }
    assert_eq!(
        app.wait_for_mail("siti.aminah@example.co.id", 1)
            .await
            .len(),
        1
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let retired = metrics
        .lines()
        .find_map(|l| l.strip_prefix("emeterai_db_connections_retired_total "))
        .unwrap_or("0");
    assert!(retired.parse::<u64>().unwrap() >= 1, "{metrics}");
}

#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn no_primary_is_unready_with_a_503_and_heals_without_a_restart() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    // Every server of the URL is now a standby: sessions are read-only,
    // and the connections the portal had are gone.
    admin_sql(
        &app.db.url,
        "ALTER DATABASE {db} SET default_transaction_read_only = on",
    );
    admin_sql(
        &app.db.url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'",
    );
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    crate::helpers::busy_page(app.register(&mut Registration::default()).await).await;
    let snapshot = emeterai::worker::refresh_status(&app.state).await;
    assert!(!snapshot.ready);
    let (_, status) = app.get_html("/status").await;
    assert!(status.contains("Terganggu"), "{status}");

    // A primary answers again: the same instance serves, no restart.
    admin_sql(
        &app.db.url,
        "ALTER DATABASE {db} SET default_transaction_read_only = off",
    );
    wait_until(
        async || app.get("/readyz").await.status() == 200,
        "ready again",
    )
    .await;
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.wait_for_mail("siti.aminah@example.co.id", 1)
            .await
            .len(),
        1
    );
    let snapshot = emeterai::worker::refresh_status(&app.state).await;
    assert!(snapshot.ready);
}

#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn a_url_naming_only_standbys_stops_start_up_with_a_clear_message() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    admin_sql(
        &db.url,
        "ALTER DATABASE {db} SET default_transaction_read_only = on",
    );
    let mut settings =
        emeterai::config::Settings::with_database(db.url.clone(), db.dir.path().join("data"));
    settings.bind = ([127, 0, 0, 1], 0).into();
    settings.key_file = Some(db.key_file.clone());
    settings.db_timeout_secs = 2;
    let error = emeterai::startup::Application::build(settings)
        .err()
        .expect("start-up refused")
        .to_string();
    assert!(
        error.contains("read-only") || error.contains("standby"),
        "{error}"
    );
}
