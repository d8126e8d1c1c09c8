//! Staff console benchmark: fills the failure log with N rows (default
//! 1,000,000), serves the real application on loopback, signs in as staff,
//! and measures
//!   - the filtered list page (p50/p95 over repeated requests) for the
//!     filters staff use, including a page deep in the log;
//!   - the CSV export of every row: time, and growth of this process's RSS
//!     (the server runs in this process) while the whole file streams.
//!
//! Targets (issue 5): list p50 <= 20 ms; CSV RSS growth <= 16 MB.
//!
//!   cargo run --release --example staff_bench -- --backend sqlite
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release --example staff_bench -- --backend postgres
//!
//! Options: --rows N, --requests N (per list case, default 200), --sealed
//! (the rows' addresses sealed, each under a data key of its own, as this
//! version writes them, before measuring; filled in SQL they are clear).
//! For PostgreSQL a fresh database is created next to BENCH_DATABASE_URL's
//! (or TEST_DATABASE_URL's) and dropped at the end.

use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use emeterai::config::Settings;
use emeterai::startup::Application;

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, arg, percentile, rss_kib};

const REASONS: [&str; 6] = [
    "validation",
    "email_taken",
    "stale_form",
    "upload_rejected",
    "email_pending",
    "link_expired",
];

/// The newest row's time: the rows reach 90 days back from now (inside
/// the failure log's retention on whatever day the benchmark runs).
fn newest() -> String {
    emeterai::clock::Clock::system()
        .now()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn fill_sqlite(url: &str, rows: u64) {
    let newest = newest();
    let mut conn = diesel::SqliteConnection::establish(url).unwrap();
    let reasons = REASONS
        .iter()
        .enumerate()
        .map(|(i, r)| format!("WHEN {i} THEN '{r}'"))
        .collect::<Vec<_>>()
        .join(" ");
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         BEGIN;
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows})
         INSERT INTO failures (reference, occurred_at, reason, fields, email, nik_masked, nik_hash, client_ip, user_agent, path)
         SELECT 'BEN-' || substr('0000' || (i / 10000), -4) || '-' || substr('0000' || (i % 10000), -4),
                datetime('{newest}', '-' || (i * 7 % 7776000) || ' seconds'),
                CASE i % 6 {reasons} END,
                CASE WHEN i % 6 = 0 THEN 'nik,phone' ELSE '' END,
                'warga' || (i % 200000) || '@example.com',
                '3201********' || substr('0000' || (i % 10000), -4),
                printf('%064x', i % 300000),
                '10.' || (i % 250) || '.0.0',
                'Mozilla/5.0 (Linux; Android 14)',
                '/register'
         FROM s;
         COMMIT;"
    ))
    .unwrap();
}

fn fill_postgres(url: &str, rows: u64) {
    let newest = newest();
    let mut conn = diesel::PgConnection::establish(url).unwrap();
    let reasons = REASONS
        .iter()
        .enumerate()
        .map(|(i, r)| format!("WHEN {i} THEN '{r}'"))
        .collect::<Vec<_>>()
        .join(" ");
    conn.batch_execute(&format!(
        "INSERT INTO failures (reference, occurred_at, reason, fields, email, nik_masked, nik_hash, client_ip, user_agent, path)
         SELECT 'BEN-' || lpad((i / 10000)::text, 4, '0') || '-' || lpad((i % 10000)::text, 4, '0'),
                timestamp '{newest}' - (i * 7 % 7776000) * interval '1 second',
                CASE i % 6 {reasons} END,
                CASE WHEN i % 6 = 0 THEN 'nik,phone' ELSE '' END,
                'warga' || (i % 200000) || '@example.com',
                '3201********' || lpad((i % 10000)::text, 4, '0'),
                lpad(to_hex(i % 300000), 64, '0'),
                '10.' || (i % 250) || '.0.0',
                'Mozilla/5.0 (Linux; Android 14)',
                '/register'
         FROM generate_series(1, {rows}) AS s(i);
         ANALYZE failures;"
    ))
    .unwrap();
}

async fn sign_in(client: &reqwest::Client, base: &str) {
    let page = support::page(client, format!("{base}/staff/login")).await;
    let csrf = support::attr(&page, "csrf_token");
    let response = client
        .post(format!("{base}/staff/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "bench@staff.test"),
            ("password", "benchmark staff password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "staff sign-in");
}

#[actix_web::main]
async fn main() {
    let backend = arg("--backend").unwrap_or_else(|| "sqlite".into());
    let rows: u64 = arg("--rows")
        .map(|r| r.parse().unwrap())
        .unwrap_or(1_000_000);
    let requests: usize = arg("--requests").map(|r| r.parse().unwrap()).unwrap_or(200);
    let sealed = std::env::args().any(|a| a == "--sealed");
    let db = BenchDb::new(&backend);
    let database_url = db.url.clone();
    let dir = &db.dir;

    let mut settings = Settings::with_database(database_url.clone(), dir.path().join("data"));
    settings.bind = ([127, 0, 0, 1], 0).into();
    settings.bcrypt_cost = 4;
    settings.workers = Some(2);
    // The console is measured, not sign-in: password only.
    settings.staff_second_factor = "off".into();
    let app = Application::build(settings).expect("application builds");
    let state = app.state();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());

    println!("backend {backend}: filling {rows} failures ...");
    let started = Instant::now();
    let fill_url = database_url.clone();
    let fill_backend = backend.clone();
    actix_web::web::block(move || {
        if fill_backend == "sqlite" {
            fill_sqlite(&fill_url, rows)
        } else {
            fill_postgres(&fill_url, rows)
        }
    })
    .await
    .unwrap();
    println!("  filled in {:.1} s", started.elapsed().as_secs_f64());
    if sealed {
        // Every row's address sealed under a data key of its own, as this
        // version writes them (the rows are filled in SQL, in clear).
        let started = Instant::now();
        let seal_state = state.clone();
        let n = actix_web::web::block(move || {
            let mut conn = seal_state.pool.get().unwrap();
            let mut n = 0;
            loop {
                let now = seal_state.clock.now();
                let done =
                    emeterai::db::keys::seal_clear_logs(&mut conn, &seal_state.keys, 5000, now)
                        .unwrap();
                if done == 0 {
                    break;
                }
                n += done;
            }
            // Rows this version writes are sealed as they are inserted,
            // in time order; these were updated in place. The table is
            // rewritten to the layout the inserts would have made: SQLite
            // VACUUM (rowid order, as filled), PostgreSQL CLUSTER on the
            // time index (the fill's order) and fresh planner statistics.
            emeterai::db::keys::compact(&mut conn).unwrap();
            if let emeterai::db::DbConn::Postgres(c) = &mut *conn {
                c.batch_execute("CLUSTER failures USING failures_occurred; ANALYZE failures")
                    .unwrap();
            }
            n
        })
        .await
        .unwrap();
        println!(
            "  sealed {n} rows' addresses in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    {
        let mut conn = state.pool.get().unwrap();
        let hash = bcrypt::hash("benchmark staff password", 4).unwrap();
        emeterai::db::staff::create(
            &mut conn,
            "bench@staff.test",
            &hash,
            emeterai::clock::Clock::system().now(),
        )
        .unwrap();
    }

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    sign_in(&client, &base).await;

    // A cursor 10,000 rows deep: the keyset condition, not an offset.
    let deep = {
        let mut conn = state.pool.get().unwrap();
        let filter = emeterai::db::staff::FailureFilter {
            reason: Some("validation".into()),
            ..Default::default()
        };
        let rows =
            emeterai::db::staff::page(&mut conn, &state.keys, &filter, None, 10_000).unwrap();
        let last = rows.last().unwrap();
        emeterai::db::staff::Cursor {
            at: last.occurred_at,
            reference: last.reference.clone(),
        }
        .encode()
    };
    // A week ending a week ago.
    let today = emeterai::clock::Clock::system().today_in_indonesia();
    let week = format!(
        "from={}&to={}",
        today - chrono::Days::new(14),
        today - chrono::Days::new(7)
    );
    let cases = [
        ("newest, no filter", "/staff/failures".to_string()),
        ("reason", "/staff/failures?reason=validation".to_string()),
        (
            "reason + 7 days",
            format!("/staff/failures?reason=stale_form&{week}"),
        ),
        (
            "search email",
            "/staff/failures?q=warga4242%40example.com".to_string(),
        ),
        (
            "search reference",
            "/staff/failures?q=BEN-0000-4242".to_string(),
        ),
        (
            "reason, page 201",
            format!("/staff/failures?reason=validation&before={deep}"),
        ),
    ];
    let mut worst_p50 = Duration::ZERO;
    println!("  list page, {requests} requests each:");
    for (name, path) in &cases {
        let url = format!("{base}{path}");
        let first = client.get(&url).send().await.unwrap().text().await.unwrap();
        let shown = first.matches(r#"href="/staff/failures/BEN-"#).count();
        assert!(shown > 0, "{name}: the page lists no failures");
        for _ in 0..4 {
            client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
        worst_p50 = worst_p50.max(p50);
        println!(
            "    {name:<20} {shown:>3} rows   p50 {:>7.2} ms   p95 {:>7.2} ms",
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3
        );
    }

    // CSV of every row, streamed; RSS sampled every 10 ms meanwhile.
    let before = rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t = Instant::now();
    let mut response = client
        .get(format!("{base}/staff/failures.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let elapsed = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let growth_mib = (peak.load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / 1024.0;
    println!(
        "  CSV: {} rows, {:.1} MB in {:.1} s; RSS {:.1} MiB before, growth {:.1} MiB",
        lines - 1,
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        before as f64 / 1024.0,
        growth_mib
    );
    assert_eq!(lines - 1, rows, "every row exported");

    let list_ok = worst_p50 <= Duration::from_millis(20);
    let csv_ok = growth_mib <= 16.0;
    println!(
        "  targets: list p50 <= 20 ms: {} (worst {:.2} ms); CSV RSS growth <= 16 MB: {}",
        if list_ok { "met" } else { "MISSED" },
        worst_p50.as_secs_f64() * 1e3,
        if csv_ok { "met" } else { "MISSED" }
    );
    handle.stop(true).await;
    drop(state);
    let ok = list_ok && csv_ok;
    drop(db);
    if !ok {
        std::process::exit(1);
    }
}
