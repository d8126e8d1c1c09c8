//! Cost of a signed-in page: `GET /account` (which checks the server-side
//! session record in the database on every request, and touches it at most
//! once a minute) against `GET /healthz` (no session, no database), with
//! `--concurrency` requests at once for `--secs` seconds each. One citizen
//! signs up through the real flow first (mail sink on loopback).
//!
//!   cargo run --release --example account_bench -- --backend sqlite
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release --example account_bench -- --backend postgres
//!
//! Options: --secs N (default 10), --concurrency N (default 16).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emeterai::config::Settings;
use emeterai::startup::Application;

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, arg, browser, choose, ms, open_form, percentile, start_mail_sink, submit};

/// `concurrency` loops of `GET path` with `client` for `secs`: requests per
/// second, p50, p99.
async fn hammer(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    secs: u64,
) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let loops = (0..concurrency).map(|_| async {
        let mut times = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            response.bytes().await.unwrap();
            times.push(t.elapsed());
        }
        times
    });
    let mut times: Vec<Duration> = futures_util::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
        .collect();
    times.sort();
    (
        times.len() as f64 / started.elapsed().as_secs_f64(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
    )
}

#[actix_web::main]
async fn main() {
    let backend = arg("--backend").unwrap_or_else(|| "sqlite".into());
    let secs: u64 = arg("--secs").map_or(10, |v| v.parse().unwrap());
    let concurrency: usize = arg("--concurrency").map_or(16, |v| v.parse().unwrap());
    let links = Arc::new(Mutex::new(HashMap::new()));
    let mail_url = start_mail_sink(links.clone()).await;
    let db = BenchDb::new(&backend);
    let mut settings = Settings::with_database(db.url.clone(), db.dir.path().join("data"));
    settings.bind = ([127, 0, 0, 1], 0).into();
    settings.bcrypt_cost = 4;
    settings.mail_api_url = Some(mail_url);
    settings.mail_api_key = Some("bench".into());
    let app = Application::build(settings).expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());

    // One citizen, through the real flow.
    let photo = actix_web::web::Bytes::from(
        std::fs::read("tests/fixtures/ktp.jpg").expect("run from the project folder"),
    );
    let form = open_form(&base).await;
    assert!(submit(&base, &form, 1, "akun", &photo).await.0);
    let link = loop {
        if let Some(link) = links.lock().unwrap().get("akun1@example.com").cloned() {
            break link;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let citizen = browser();
    assert!(choose(&citizen, &base, &link).await.0, "signed in");

    // Warm up, then measure each.
    hammer(&citizen, &format!("{base}/account"), concurrency, 1).await;
    let (health, h50, h99) = hammer(&citizen, &format!("{base}/healthz"), concurrency, secs).await;
    let (account, a50, a99) = hammer(&citizen, &format!("{base}/account"), concurrency, secs).await;
    println!(
        "backend {backend}, {concurrency} at once, {secs} s each:\n  GET /healthz: {health:.0} req/s, p50 {:.2} ms, p99 {:.2} ms\n  GET /account: {account:.0} req/s, p50 {:.2} ms, p99 {:.2} ms\n  /account / /healthz: {:.2}",
        ms(h50),
        ms(h99),
        ms(a50),
        ms(a99),
        account / health
    );
    handle.stop(true).await;
    drop(db);
}
