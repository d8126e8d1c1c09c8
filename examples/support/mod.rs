//! What the benchmarks share: arguments, percentiles, and a database for one
//! run (a SQLite file in a temporary directory, or a fresh PostgreSQL
//! database next to BENCH_DATABASE_URL's, dropped at the end).

#![allow(dead_code)] // Each benchmark uses its own part.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl};

pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sign-up outcomes (accepted?, POST time) over a wall time: how many were
/// accepted, the rate, and the POST p50 and p99.
pub fn summarize(
    results: &[(bool, Duration)],
    elapsed: Duration,
) -> (usize, f64, Duration, Duration) {
    let accepted = results.iter().filter(|(ok, _)| *ok).count();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    (
        accepted,
        accepted as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

/// Prints each target as met or MISSED; whether all were met.
pub fn report(checks: &[(&str, bool)]) -> bool {
    for (name, met) in checks {
        println!("{name}: {}", if *met { "met" } else { "MISSED" });
    }
    checks.iter().all(|(_, met)| *met)
}

/// This process's resident memory, in KiB (the server runs in it).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A valid NIK for citizen `i` (< 9999 * 28): province 32, born on day
/// `birth_day(i)` of August 1990, serial from `i`.
pub fn nik(i: usize) -> String {
    format!("320101{:02}0890{:04}", birth_day(i), 1 + i % 9999)
}

/// The day of August 1990 that `nik(i)` says.
pub fn birth_day(i: usize) -> usize {
    1 + (i / 9999) % 28
}

/// The text of the page at `url`, opened in `client`.
pub async fn page(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of a hidden field in a page.
pub fn attr(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// A browser of its own that opens a fresh connection for every request
/// (a request made seconds later would otherwise reuse a connection the
/// server has closed).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        // Plain HTTP on loopback: loading the system's root certificates
        // for every citizen would cost the shared CPU more than a request.
        .tls_certs_only([])
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The database of one benchmark run.
pub struct BenchDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl BenchDb {
    /// `backend` is `sqlite` or `postgres`.
    pub fn new(backend: &str) -> BenchDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            "sqlite" => BenchDb {
                url: dir.path().join("bench.sqlite3").display().to_string(),
                dir,
                postgres: None,
            },
            "postgres" => {
                let admin = std::env::var("BENCH_DATABASE_URL")
                    .or_else(|_| std::env::var("TEST_DATABASE_URL"))
                    .expect("set BENCH_DATABASE_URL to a PostgreSQL URL");
                emeterai::db::init_tls();
                let name = format!("emeterai_bench_{}", std::process::id());
                let mut conn = diesel::PgConnection::establish(&admin).unwrap();
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .unwrap();
                let base = admin.split('?').next().unwrap();
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                BenchDb {
                    url,
                    dir,
                    postgres: Some((admin, name)),
                }
            }
            other => panic!("--backend sqlite|postgres, not {other}"),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// A registration form opened in a browser of its own.
pub struct SignupForm {
    pub client: reqwest::Client,
    pub csrf: String,
    pub submission: String,
}

/// Opens `GET /register` and keeps its CSRF token and submission id.
pub async fn open_form(base: &str) -> SignupForm {
    let client = browser();
    let html = page(&client, format!("{base}/register")).await;
    SignupForm {
        csrf: attr(&html, "csrf_token"),
        submission: attr(&html, "submission_id"),
        client,
    }
}

/// Submits the form as citizen `i` (address `{prefix}{i}@example.com`)
/// with `photo`; whether it was accepted, and how long the POST took.
pub async fn submit(
    base: &str,
    form: &SignupForm,
    i: usize,
    prefix: &str,
    photo: &actix_web::web::Bytes,
) -> (bool, std::time::Duration) {
    let multipart = signup_multipart(&form.csrf, &form.submission, i, prefix, photo);
    let started = std::time::Instant::now();
    let response = form
        .client
        .post(format!("{base}/register"))
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    let accepted = response.status() == 303;
    if !accepted {
        eprintln!("sign-up {i} refused: {}", response.status());
    }
    (accepted, started.elapsed())
}

/// The registration form as citizen `i` fills it in (address
/// `{prefix}{i}@example.com`), with `photo`.
pub fn signup_multipart(
    csrf: &str,
    submission: &str,
    i: usize,
    prefix: &str,
    photo: &actix_web::web::Bytes,
) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("csrf_token", csrf.to_string())
        .text("submission_id", submission.to_string())
        .text("full_name", "Warga Uji Beban")
        .text("nik", nik(i))
        .text("birth_date", format!("1990-08-{:02}", birth_day(i)))
        .text("email", format!("{prefix}{i}@example.com"))
        .text("phone", "0812 3456 7890")
        .text("npwp", "")
        .text("agree_terms", "on")
        .part(
            "ktp_photo",
            // Shared, not copied: the client's work stays small beside the
            // server's on the same cores.
            reqwest::multipart::Part::stream_with_length(photo.clone(), photo.len() as u64)
                .file_name("ktp.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        )
}

/// The mail provider: accepts every mail and keeps its link by address.
pub type Links = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>;

pub async fn start_mail_sink(links: Links) -> String {
    let server = actix_web::HttpServer::new(move || {
        let links = links.clone();
        actix_web::App::new().route(
            "/send",
            actix_web::web::post().to(move |body: actix_web::web::Json<serde_json::Value>| {
                let links = links.clone();
                async move {
                    let to = body["to"][0].as_str().unwrap_or_default().to_string();
                    let text = body["text"].as_str().unwrap_or_default();
                    if let Some(start) = text.find("/verify?token=") {
                        let link = text[start..].split_whitespace().next().unwrap_or_default();
                        links.lock().unwrap().insert(to, link.to_string());
                    }
                    actix_web::HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}/send")
}

/// Chooses the password through the link in `client` (which is signed in
/// afterwards), retrying (after the page's `Refresh`, as a browser does)
/// while the pool answers 503. Returns whether it succeeded, how many 503s
/// it met, and when it finished.
pub async fn choose(
    client: &reqwest::Client,
    base: &str,
    link: &str,
) -> (bool, usize, std::time::Instant) {
    let html = page(client, format!("{base}{link}")).await;
    let (csrf, token) = (attr(&html, "csrf_token"), attr(&html, "token"));
    let mut busy = 0;
    loop {
        let response = client
            .post(format!("{base}/verify"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("token", token.as_str()),
                ("password", "kopi tubruk pagi hari"),
                ("password_confirm", "kopi tubruk pagi hari"),
            ])
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            303 => return (true, busy, std::time::Instant::now()),
            503 => {
                // As a browser does: wait for the `Refresh` the page carries.
                busy += 1;
                let wait = response
                    .headers()
                    .get("refresh")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(5);
                actix_web::rt::time::sleep(std::time::Duration::from_secs(wait)).await;
            }
            _ => return (false, busy, std::time::Instant::now()),
        }
    }
}

/// A real 1600 x 1200 JPEG of about 300 KB: what the form's script sends
/// after shrinking a phone photo (upright, no metadata).
pub fn shrunk_jpeg() -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    let image = image::RgbImage::from_fn(1600, 1200, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as u8;
        image::Rgb([(x / 8) as u8 / 2 + noise, (y / 6) as u8 / 2 + noise, 140])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&image)
        .unwrap();
    out
}

/// A 4000 x 3000 photo with the fine detail of a real one (sensor noise
/// over a gradient), as a quality-92 JPEG: about 4-5 MB.
pub fn camera_jpeg() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 30) as u8;
        image::Rgb([
            (x / 20) as u8 / 2 + noise,
            (y / 15) as u8 / 2 + noise,
            120 + noise / 2,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&image)
        .unwrap();
    out
}
