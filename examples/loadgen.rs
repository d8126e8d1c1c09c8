//! Load generator: plays whole citizen journeys against a running portal (one
//! instance, or several behind a balancer) as an open model: citizens arrive
//! at `--rate` per second (Poisson arrivals) for `--duration` seconds,
//! whatever the portal's speed, as on a deadline day.
//!
//! Each citizen opens the form, thinks, submits it with a KTP photo (most
//! shrunk by the form's script to ~300 KB, `--camera-share` of them the
//! phone's 4-5 MB original), waits for the mail at the mail sink this
//! program serves, opens the link, thinks, chooses the password and signs in
//! from another device. Some behave as people do: `--retry-share` send the
//! form again as after a dropped connection, `--double-share` press submit
//! twice at once, `--stale-share` come back with a page whose session is
//! gone. Connection errors and 502/504 answers are retried like a citizen
//! pressing reload, up to 6 times; a busy page (503 with `Refresh`) reloads
//! itself for up to 5 minutes.
//!
//! At the end it reports p50/p95/p99 and errors per step, and checks every
//! acknowledged registration (303 from `POST /register`): present exactly
//! once in the database, its verification mail delivered exactly once
//! (copies re-sent with the same `Idempotency-Key` are counted apart).
//! Exits non-zero when a check fails or a journey could not finish.
//!
//! The portal must send mail to this program's sink:
//!   EMETERAI_MAIL_API_URL=http://127.0.0.1:18025/send emeterai serve
//!   cargo run --release --example loadgen -- --base http://127.0.0.1:8080 \
//!     --rate 5 --duration 60 --database-url "$DATABASE_URL"
//!
//! Options: --base URL, --mail-port N (18025), --rate R (5), --duration S
//! (60), --think-ms N (2000: each think is 0.5-1.5 times it), --retry-share,
//! --double-share, --stale-share (0.1, 0.05, 0.05), --camera-share (0.2),
//! --database-url URL (without it the database check is skipped) with
//! --key-file PATH (the portal's EMETERAI_KEY_FILE: addresses are found by
//! their blind index),
//! --prefix TEXT (addresses TEXT{i}@example.com), --first N (first citizen
//! number: NIKs must be new to the database), --grace S (360: how long
//! journeys may run after the last arrival). `--hash-rate COST` only prints
//! the bcrypt hashes per second of one thread at COST, and exits.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;

#[path = "support/mod.rs"]
mod support;
use support::{arg, attr, browser, camera_jpeg, ms, percentile, shrunk_jpeg, signup_multipart};

const PASSWORD: &str = "kopi tubruk pagi hari";
const TRIES: usize = 6;
/// How long a citizen lets the busy page reload itself.
const BUSY_PATIENCE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Step {
    ok: Vec<Duration>,
    /// Attempts that failed and were tried again.
    retried: usize,
    /// Steps given up (or answered wrongly).
    failed: usize,
}

#[derive(Default)]
struct Stats {
    steps: Mutex<HashMap<&'static str, Step>>,
}

impl Stats {
    fn ok(&self, step: &'static str, took: Duration) {
        self.steps
            .lock()
            .unwrap()
            .entry(step)
            .or_default()
            .ok
            .push(took);
    }
    fn retried(&self, step: &'static str) {
        self.steps.lock().unwrap().entry(step).or_default().retried += 1;
    }
    fn failed(&self, step: &'static str, why: String) {
        eprintln!("{step}: {why}");
        self.steps.lock().unwrap().entry(step).or_default().failed += 1;
    }
}

/// What the mail sink received: per address, each delivery's idempotency
/// key and verification link.
type Mailbox = Arc<Mutex<HashMap<String, Vec<(String, String)>>>>;

async fn start_sink(port: u16, mailbox: Mailbox) {
    let server = actix_web::HttpServer::new(move || {
        let mailbox = mailbox.clone();
        actix_web::App::new().route(
            "/send",
            actix_web::web::post().to(
                move |req: actix_web::HttpRequest,
                      body: actix_web::web::Json<serde_json::Value>| {
                    let mailbox = mailbox.clone();
                    async move {
                        let to = body["to"][0].as_str().unwrap_or_default().to_string();
                        let text = body["text"].as_str().unwrap_or_default();
                        let key = req
                            .headers()
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        if let Some(start) = text.find("/verify?token=") {
                            let link = text[start..].split_whitespace().next().unwrap_or_default();
                            mailbox
                                .lock()
                                .unwrap()
                                .entry(to)
                                .or_default()
                                .push((key, link.to_string()));
                        }
                        actix_web::HttpResponse::Ok().finish()
                    }
                },
            ),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap_or_else(|e| panic!("mail sink on 127.0.0.1:{port}: {e}"));
    actix_web::rt::spawn(server.run());
}

/// One request as a citizen makes it: a dropped connection or a 502/504 is
/// tried again after 1, 2, 4 ... s (up to 6 tries); a 503 page that says
/// when to come back (`Refresh`, as the busy page reloads itself) is tried
/// again then, for up to `BUSY_PATIENCE`.
async fn attempt<F, Fut>(
    stats: &Stats,
    step: &'static str,
    mut send: F,
) -> Option<reqwest::Response>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    let first = Instant::now();
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let wait = match send().await {
            Ok(response) if ![502, 503, 504].contains(&response.status().as_u16()) => {
                stats.ok(step, started.elapsed());
                return Some(response);
            }
            Ok(response) => match response
                .headers()
                .get("refresh")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(secs) if first.elapsed() < BUSY_PATIENCE => secs,
                _ => {
                    failures += 1;
                    1u64 << failures.min(4)
                }
            },
            Err(_) => {
                failures += 1;
                1u64 << failures.min(4)
            }
        };
        if failures >= TRIES {
            stats.failed(step, format!("no answer after {TRIES} failed tries"));
            return None;
        }
        stats.retried(step);
        actix_web::rt::time::sleep(Duration::from_secs(wait.min(15))).await;
    }
}

async fn think(base_ms: u64) {
    let factor = 0.5 + rand::random::<f64>();
    actix_web::rt::time::sleep(Duration::from_millis((base_ms as f64 * factor) as u64)).await;
}

struct Run {
    base: String,
    prefix: String,
    think_ms: u64,
    retry_share: f64,
    double_share: f64,
    stale_share: f64,
    camera_share: f64,
    shrunk: Bytes,
    camera: Bytes,
    stats: Stats,
    mailbox: Mailbox,
    /// Addresses whose registration was acknowledged (303).
    acked: Mutex<HashSet<String>>,
    /// Addresses whose password was chosen (an account must exist).
    completed: Mutex<HashSet<String>>,
    finished: Mutex<usize>,
}

impl Run {
    fn address(&self, i: usize) -> String {
        format!("{}{i}@example.com", self.prefix)
    }

    async fn post_form(
        &self,
        client: &reqwest::Client,
        csrf: &str,
        submission: &str,
        i: usize,
        photo: &Bytes,
        step: &'static str,
    ) -> Option<(u16, String)> {
        let url = format!("{}/register", self.base);
        let response = attempt(&self.stats, step, || {
            client
                .post(&url)
                .multipart(signup_multipart(csrf, submission, i, &self.prefix, photo))
                .send()
        })
        .await?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// One citizen's journey; whether it reached the signed-in account.
    async fn journey(&self, i: usize) -> bool {
        let address = self.address(i);
        let mut client = browser();
        let url = format!("{}/register", self.base);
        let Some(form) = attempt(&self.stats, "open form", || client.get(&url).send()).await else {
            return false;
        };
        let html = form.text().await.unwrap_or_default();
        let (mut csrf, mut submission) = (attr(&html, "csrf_token"), attr(&html, "submission_id"));
        think(self.think_ms).await;
        let photo = if rand::random::<f64>() < self.camera_share {
            &self.camera
        } else {
            &self.shrunk
        };

        // Back after the session was lost (a browser restarted on an old
        // tab): the form comes back with a new token and every answer.
        if rand::random::<f64>() < self.stale_share {
            client = browser();
            match self
                .post_form(&client, &csrf, &submission, i, photo, "stale page")
                .await
            {
                Some((403, html)) => {
                    csrf = attr(&html, "csrf_token");
                    submission = attr(&html, "submission_id");
                }
                Some((status, _)) => {
                    self.stats
                        .failed("stale page", format!("{address}: {status}, not 403"));
                    return false;
                }
                None => return false,
            }
        }
        let double = rand::random::<f64>() < self.double_share;
        let answers = if double {
            let (a, b) = futures_util::future::join(
                self.post_form(&client, &csrf, &submission, i, photo, "submit"),
                self.post_form(
                    &client,
                    &csrf,
                    &submission,
                    i,
                    photo,
                    "submit (second press)",
                ),
            )
            .await;
            vec![a, b]
        } else {
            vec![
                self.post_form(&client, &csrf, &submission, i, photo, "submit")
                    .await,
            ]
        };
        if answers.iter().any(|a| !matches!(a, Some((303, _)))) {
            let statuses: Vec<_> = answers
                .iter()
                .map(|a| a.as_ref().map(|(s, _)| *s))
                .collect();
            self.stats
                .failed("submit", format!("{address}: {statuses:?}"));
            return false;
        }
        let acked_at = Instant::now();
        self.acked.lock().unwrap().insert(address.clone());
        // The answer was lost on the way back: the same form again.
        if rand::random::<f64>() < self.retry_share {
            match self
                .post_form(&client, &csrf, &submission, i, photo, "resubmit")
                .await
            {
                Some((303, _)) => {}
                other => {
                    let status = other.map(|(s, _)| s);
                    self.stats
                        .failed("resubmit", format!("{address}: {status:?}"));
                    return false;
                }
            }
        }

        // The mail, at the sink.
        let link = loop {
            let found = self
                .mailbox
                .lock()
                .unwrap()
                .get(&address)
                .and_then(|m| m.first().map(|(_, link)| link.clone()));
            if let Some(link) = found {
                self.stats.ok("mail arrives", acked_at.elapsed());
                break link;
            }
            if acked_at.elapsed() > Duration::from_secs(120) {
                self.stats
                    .failed("mail arrives", format!("{address}: no mail in 120 s"));
                return false;
            }
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        };
        let link_url = format!("{}{link}", self.base);
        let Some(page) = attempt(&self.stats, "open link", || client.get(&link_url).send()).await
        else {
            return false;
        };
        let html = page.text().await.unwrap_or_default();
        if !html.contains(r#"name="token""#) {
            self.stats
                .failed("open link", format!("{address}: no password form"));
            return false;
        }
        let (csrf, token) = (attr(&html, "csrf_token"), attr(&html, "token"));
        think(self.think_ms).await;
        let verify = format!("{}/verify", self.base);
        let chosen = attempt(&self.stats, "choose password", || {
            client
                .post(&verify)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("token", token.as_str()),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ])
                .send()
        })
        .await;
        match chosen.map(|r| r.status().as_u16()) {
            Some(303) => {
                self.completed.lock().unwrap().insert(address.clone());
            }
            Some(status) => {
                self.stats
                    .failed("choose password", format!("{address}: {status}"));
                return false;
            }
            None => return false,
        }

        // Later, on another device.
        let phone = browser();
        let login = format!("{}/login", self.base);
        let Some(page) = attempt(&self.stats, "open sign-in", || phone.get(&login).send()).await
        else {
            return false;
        };
        let csrf = attr(&page.text().await.unwrap_or_default(), "csrf_token");
        let signed_in = attempt(&self.stats, "sign in", || {
            phone
                .post(&login)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", address.as_str()),
                    ("password", PASSWORD),
                ])
                .send()
        })
        .await;
        match signed_in.map(|r| r.status().as_u16()) {
            Some(303) => true,
            Some(status) => {
                self.stats.failed("sign in", format!("{address}: {status}"));
                false
            }
            None => false,
        }
    }
}

fn share(name: &str, default: f64) -> f64 {
    arg(name).map_or(default, |v| v.parse().unwrap())
}

/// Hashes per second one hashing thread manages at `cost` (an instance
/// with EMETERAI_HASH_CONCURRENCY=1 on this machine).
fn hash_rate(cost: u32) -> f64 {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(2) || n < 3 {
        bcrypt::hash(PASSWORD, cost).unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[actix_web::main]
async fn main() {
    if let Some(cost) = arg("--hash-rate") {
        println!("{:.1}", hash_rate(cost.parse().unwrap()));
        return;
    }
    let base = arg("--base").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let mail_port: u16 = arg("--mail-port").map_or(18025, |v| v.parse().unwrap());
    let rate = share("--rate", 5.0);
    let duration = share("--duration", 60.0);
    let first: usize = arg("--first").map_or(0, |v| v.parse().unwrap());
    let grace = share("--grace", 360.0);
    let run = Arc::new(Run {
        base: base.trim_end_matches('/').to_string(),
        prefix: arg("--prefix").unwrap_or_else(|| format!("lg{}-", std::process::id())),
        think_ms: arg("--think-ms").map_or(2000, |v| v.parse().unwrap()),
        retry_share: share("--retry-share", 0.1),
        double_share: share("--double-share", 0.05),
        stale_share: share("--stale-share", 0.05),
        camera_share: share("--camera-share", 0.2),
        shrunk: Bytes::from(shrunk_jpeg()),
        camera: Bytes::from(camera_jpeg()),
        stats: Stats::default(),
        mailbox: Mailbox::default(),
        acked: Mutex::default(),
        completed: Mutex::default(),
        finished: Mutex::default(),
    });
    start_sink(mail_port, run.mailbox.clone()).await;
    println!(
        "loadgen: {rate}/s for {duration} s against {base}; mail sink on 127.0.0.1:{mail_port}; \
         think {} ms; shares: retry {}, double {}, stale {}, camera photo {}",
        run.think_ms, run.retry_share, run.double_share, run.stale_share, run.camera_share
    );

    // Open model: arrivals on their own clock, never waiting for answers.
    let started = Instant::now();
    let mut next = 0.0;
    let mut journeys = Vec::new();
    let mut i = first;
    while next < duration {
        let at = started + Duration::from_secs_f64(next);
        actix_web::rt::time::sleep_until(at.into()).await;
        let run = run.clone();
        journeys.push(actix_web::rt::spawn(async move {
            let ok = run.journey(i).await;
            *run.finished.lock().unwrap() += 1;
            ok
        }));
        i += 1;
        // Exponential gaps: a Poisson process at `rate`.
        next += -(1.0 - rand::random::<f64>()).ln() / rate;
    }
    let arrived = journeys.len();
    println!(
        "loadgen: {arrived} citizens arrived in {:.1} s; waiting for their journeys",
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs_f64(grace);
    let mut done_ok = 0;
    let mut unfinished = 0;
    for journey in journeys {
        let left = deadline.saturating_duration_since(Instant::now());
        match actix_web::rt::time::timeout(left, journey).await {
            Ok(Ok(true)) => done_ok += 1,
            Ok(_) => {}
            Err(_) => unfinished += 1,
        }
    }
    let elapsed = started.elapsed();

    println!("\n| step | ok | retried | failed | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let order = [
        "open form",
        "stale page",
        "submit",
        "submit (second press)",
        "resubmit",
        "mail arrives",
        "open link",
        "choose password",
        "open sign-in",
        "sign in",
    ];
    {
        let mut steps = run.stats.steps.lock().unwrap();
        for name in order {
            let Some(step) = steps.get_mut(name) else {
                continue;
            };
            step.ok.sort();
            println!(
                "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
                step.ok.len(),
                step.retried,
                step.failed,
                ms(percentile(&step.ok, 0.5)),
                ms(percentile(&step.ok, 0.95)),
                ms(percentile(&step.ok, 0.99)),
            );
        }
    }

    // Every acknowledged registration: once in the database, one mail.
    let acked = run.acked.lock().unwrap().clone();
    let completed = run.completed.lock().unwrap().clone();
    let mailbox = run.mailbox.lock().unwrap().clone();
    let mut mails_lost = 0;
    let mut mails_twice = 0;
    let mut copies_dropped = 0;
    for address in &acked {
        let deliveries = mailbox.get(address).map_or(&[][..], |v| v.as_slice());
        let distinct: HashSet<&str> = deliveries.iter().map(|(key, _)| key.as_str()).collect();
        match distinct.len() {
            0 => mails_lost += 1,
            1 => {}
            _ => mails_twice += 1,
        }
        copies_dropped += deliveries.len() - distinct.len();
    }
    let unexpected_mail = mailbox.keys().filter(|a| !acked.contains(*a)).count();
    println!(
        "\narrived {arrived}, acknowledged {}, passwords chosen {}, journeys finished {done_ok}, \
         not finished in time {unfinished}, in {:.1} s",
        acked.len(),
        completed.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "mail: lost {mails_lost}, sent twice {mails_twice}, copies with a repeated idempotency key \
         {copies_dropped}, to addresses never acknowledged {unexpected_mail}"
    );
    let mut checks = vec![
        ("every journey finished", done_ok == arrived),
        ("no mail lost", mails_lost == 0),
        ("no mail sent twice", mails_twice == 0),
    ];
    let database = arg("--database-url").map(|url| {
        let path = arg("--key-file").expect("--key-file with --database-url");
        let text = std::fs::read_to_string(&path).expect("--key-file");
        let ring = emeterai::domain::sealed::KeyRing::parse(&text).expect("a key file");
        count_in_database(&url, &ring, &acked, &completed)
    });
    if let Some((missing, doubled, no_account)) = database {
        println!(
            "database: registrations missing {missing}, doubled {doubled}; chosen passwords \
             without exactly one account {no_account}"
        );
        checks.push(("no acknowledged registration lost", missing == 0));
        checks.push(("no registration doubled", doubled == 0));
        checks.push(("one account per chosen password", no_account == 0));
    } else {
        println!("database: not checked (no --database-url)");
    }
    if !support::report(&checks) {
        std::process::exit(1);
    }
}

/// (acknowledged registrations missing, present more than once, chosen
/// passwords without exactly one account).
fn count_in_database(
    url: &str,
    ring: &emeterai::domain::sealed::KeyRing,
    acked: &HashSet<String>,
    completed: &HashSet<String>,
) -> (usize, usize, usize) {
    use diesel::prelude::*;
    use emeterai::db::identity::email_keys;
    use emeterai::schema::{accounts, registrations};
    emeterai::db::init_tls();
    let parsed = emeterai::db::DbUrl::parse(url).expect("--database-url");
    let pool = emeterai::db::build_pool(
        &parsed,
        2,
        Duration::from_secs(10),
        &emeterai::db::PgTuning::default(),
    )
    .expect("database");
    let mut conn = pool.get().expect("database connection");
    let (mut missing, mut doubled, mut no_account) = (0, 0, 0);
    for address in acked {
        let n: i64 = registrations::table
            .filter(registrations::email.eq_any(email_keys(ring, address)))
            .count()
            .get_result(&mut conn)
            .unwrap();
        match n {
            0 => missing += 1,
            1 => {}
            _ => doubled += 1,
        }
        let accounts: i64 = accounts::table
            .filter(accounts::email.eq_any(email_keys(ring, address)))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if accounts > 1 || (completed.contains(address) && accounts != 1) {
            no_account += 1;
        }
    }
    (missing, doubled, no_account)
}
