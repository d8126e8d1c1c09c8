//! KTP photo benchmark, through the server path (no JavaScript): every
//! sign-up carries a 12 MP camera JPEG of 4-5 MB that the server decodes,
//! makes upright, shrinks and re-encodes. Measures
//!   1. sign-ups per second with `--concurrency` citizens at once;
//!   2. the peak RSS of this process (the server runs in it) while 16 such
//!      uploads arrive at the same moment.
//!
//! Targets (issue 10): >= 20 sign-ups/s on one 2-core instance; peak RSS
//! <= 256 MiB. Exits non-zero when one is missed.
//!
//!   cargo run --release --example photo_bench -- --backend sqlite
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --release --example photo_bench -- --backend postgres
//!
//! Options: --signups N (default 200), --concurrency N (default 8),
//! --photo-concurrency N (EMETERAI_PHOTO_CONCURRENCY; default one per core).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use emeterai::config::Settings;
use emeterai::startup::Application;
use futures_util::StreamExt;

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, arg, camera_jpeg, ms, open_form, report, rss_kib, submit, summarize};

async fn sign_up(base: &str, i: usize, photo: actix_web::web::Bytes) -> (bool, Duration) {
    let form = open_form(base).await;
    submit(base, &form, i, "foto", &photo).await
}

#[actix_web::main]
async fn main() {
    let backend = arg("--backend").unwrap_or_else(|| "sqlite".into());
    let signups: usize = arg("--signups").map_or(200, |v| v.parse().unwrap());
    let concurrency: usize = arg("--concurrency").map_or(8, |v| v.parse().unwrap());

    let photo = actix_web::web::Bytes::from(camera_jpeg());
    println!(
        "backend {backend}: camera photo 4000x3000, {:.1} MB; {signups} sign-ups, {concurrency} at once",
        photo.len() as f64 / 1e6
    );
    let db = BenchDb::new(&backend);
    let mut settings = Settings::with_database(db.url.clone(), db.dir.path().join("data"));
    settings.bind = ([127, 0, 0, 1], 0).into();
    settings.bcrypt_cost = 4;
    settings.registrations_per_ip_hour = 1_000_000;
    settings.photo_concurrency = arg("--photo-concurrency").map(|v| v.parse().unwrap());
    let app = Application::build(settings).expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());

    // 2 first, on a fresh process: 16 uploads at the same moment.
    let baseline = rss_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let burst: Vec<(bool, Duration)> =
        futures_util::future::join_all((0..16).map(|i| sign_up(&base, 9_000 + i, photo.clone())))
            .await;
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    println!(
        "16 at once: {} accepted; RSS {:.0} MiB before, peak {peak_mib:.0} MiB",
        burst.iter().filter(|(ok, _)| *ok).count(),
        baseline as f64 / 1024.0
    );

    // 1. Throughput.
    let started = Instant::now();
    let results: Vec<(bool, Duration)> = futures_util::stream::iter(0..signups)
        .map(|i| sign_up(&base, i, photo.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let (accepted, rate, p50, p99) = summarize(&results, elapsed);
    println!(
        "sign-ups with a camera photo: {accepted}/{signups} in {:.1} s = {rate:.1}/s; POST p50 {:.0} ms, p99 {:.0} ms",
        elapsed.as_secs_f64(),
        ms(p50),
        ms(p99)
    );

    let checks = [
        ("sign-ups/s >= 20", rate >= 20.0),
        ("peak RSS <= 256 MiB", peak_mib <= 256.0),
        ("every sign-up accepted", accepted == signups),
        ("the 16 at once accepted", burst.iter().all(|(ok, _)| *ok)),
    ];
    let ok = report(&checks);
    handle.stop(true).await;
    drop(db);
    if !ok {
        std::process::exit(1);
    }
}
