//! Test harness: each test spawns the real application on port 0 with its
//! own fresh database (a temporary SQLite file, or a fresh PostgreSQL
//! database made from `TEST_DATABASE_URL`) and drives it over HTTP.

use actix_web::dev::ServerHandle;
use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use emeterai::config::Settings;
use emeterai::startup::Application;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    /// The key file every instance on this database shares.
    pub key_file: std::path::PathBuf,
    postgres: Option<(String, String)>, // (admin URL, database name)
}

impl TestDb {
    /// `None` when the test asks for PostgreSQL and `TEST_DATABASE_URL` is
    /// unset on a developer machine. In CI it must be set.
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key_file = dir.path().join("keys.txt");
        std::fs::write(
            &key_file,
            emeterai::domain::sealed::KeyRing::new_file_text(),
        )
        .expect("key file");
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: dir.path().join("test.sqlite3").display().to_string(),
                key_file,
                dir,
                postgres: None,
            }),
            Backend::Postgres => {
                let admin = match std::env::var("TEST_DATABASE_URL") {
                    Ok(url) if !url.is_empty() => url,
                    _ if std::env::var_os("CI").is_some() => {
                        panic!("TEST_DATABASE_URL must be set in CI so PostgreSQL tests run")
                    }
                    _ => {
                        eprintln!("skipped: TEST_DATABASE_URL is not set");
                        return None;
                    }
                };
                emeterai::db::init_tls();
                let name = format!("emeterai_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                Some(TestDb {
                    url: with_database_name(&admin, &name),
                    key_file,
                    dir,
                    postgres: Some((admin, name)),
                })
            }
        }
    }

    /// Another handle on the same database, for a second instance; the
    /// database is dropped with the first handle only.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            key_file: self.key_file.clone(),
            dir: tempfile::tempdir().expect("temporary directory"),
            postgres: None,
        }
    }

    /// Makes the database disappear under the running application.
    pub fn destroy(&self) {
        match &self.postgres {
            Some((admin, name)) => drop_pg(admin, name),
            None => std::fs::remove_file(&self.url).expect("remove SQLite file"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres {
            drop_pg(admin, name);
        }
    }
}

fn drop_pg(admin: &str, name: &str) {
    if let Ok(mut conn) = PgConnection::establish(admin) {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn);
    }
}

/// The `host:port` of a PostgreSQL URL, resolved.
pub fn host_port(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = &url[url.find("://").unwrap() + 3..];
    let rest = rest.split(['/', '?']).next().unwrap();
    let host = rest.rsplit('@').next().unwrap();
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    host.to_socket_addrs().unwrap().next().unwrap()
}

/// The URL with another `host:port`.
pub fn with_host_port(url: &str, host_port: &str) -> String {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!(
        "{}{}{}{}",
        &url[..scheme_end],
        user,
        host_port,
        &rest[authority_end..]
    )
}

/// Replaces the database name (the URL path) of a PostgreSQL URL.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

pub struct TestApp {
    pub address: String,
    pub mail: crate::mail_stub::MailStub,
    /// Keeps cookies, never follows redirects.
    pub client: reqwest::Client,
    pub db: TestDb,
    pub state: actix_web::web::Data<emeterai::startup::AppState>,
    handle: ServerHandle,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns the application with settings adjusted by `configure`.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        Self::spawn_on(TestDb::new(backend)?, configure).await
    }

    /// Spawns the application on a database made beforehand.
    pub async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let mail = crate::mail_stub::MailStub::start();
        let mut settings = Settings::with_database(db.url.clone(), db.dir.path().join("data"));
        settings.bind = ([127, 0, 0, 1], 0).into();
        settings.workers = Some(1);
        settings.bcrypt_cost = 4;
        settings.shutdown_timeout_secs = 0;
        settings.mail_api_url = Some(mail.url.clone());
        settings.mail_api_key = Some("test-mail-key".into());
        settings.mail_retry_base_secs = 1;
        settings.mail_retry_max_secs = 2;
        settings.mail_timeout_secs = 3;
        settings.mail_poll_secs = 1;
        settings.base_url = "http://portal.test".into();
        settings.key_file = Some(db.key_file.clone());
        configure(&mut settings);
        let app = Application::build(settings).expect("application builds");
        let port = app.port();
        let state = app.state();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(TestApp {
            address: format!("http://127.0.0.1:{port}"),
            mail,
            client,
            db,
            state,
            handle,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_html(&self, path: &str) -> (reqwest::StatusCode, String) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// Waits until `count` mails to `to` were delivered to the provider
    /// stub; on time-out, the panic shows the outbox as the portal sees it.
    pub async fn wait_for_mail(&self, to: &str, count: usize) -> Vec<crate::mail_stub::SentMail> {
        if let Some(mails) = self.mail.try_wait_for(to, count).await {
            return mails;
        }
        let outbox = {
            let mut conn = self.state.pool.get().unwrap();
            emeterai::db::outbox::mails_to(&mut conn, &self.state.keys, to)
                .unwrap()
                .into_iter()
                .map(|m| {
                    format!(
                        "{} {} attempts={} next={} locked={:?} error={:?}",
                        m.kind,
                        m.status,
                        m.attempts,
                        m.next_attempt_at,
                        m.locked_until,
                        m.last_error
                    )
                })
                .collect::<Vec<_>>()
        };
        panic!(
            "no {count} mail(s) to {to} after {} delivery attempts; delivered: {:?}; outbox: {outbox:#?}; now {}",
            self.mail.attempts(),
            self.mail
                .accepted()
                .iter()
                .map(|m| m.subject.clone())
                .collect::<Vec<_>>(),
            chrono::Utc::now().naive_utc()
        );
    }

    /// Opens the registration form: its CSRF token and submission id.
    pub async fn open_register_form(&self) -> (String, String) {
        let (status, html) = self.get_html("/register").await;
        assert_eq!(status, 200);
        (
            attr_after(&html, r#"name="csrf_token""#, "value").expect("csrf_token"),
            attr_after(&html, r#"name="submission_id""#, "value").expect("submission_id"),
        )
    }

    /// Posts the registration form as a browser does (multipart).
    pub async fn post_register(&self, input: &Registration) -> reqwest::Response {
        self.client
            .post(self.url("/register"))
            .multipart(input.to_form())
            .send()
            .await
            .expect("POST /register")
    }

    /// Opens the form, fills it in with `input` and submits it.
    pub async fn register(&self, input: &mut Registration) -> reqwest::Response {
        let (csrf, submission) = self.open_register_form().await;
        input.csrf_token = csrf;
        input.submission_id = submission;
        self.post_register(input).await
    }

    /// Opens the form in `browser` (a browser of its own) and submits
    /// `input` there: the response.
    pub async fn register_in(
        &self,
        browser: &reqwest::Client,
        input: &mut Registration,
    ) -> reqwest::Response {
        let html = browser
            .get(self.url("/register"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        input.csrf_token = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
        input.submission_id = attr_after(&html, r#"name="submission_id""#, "value").unwrap();
        browser
            .post(self.url("/register"))
            .multipart(input.to_form())
            .send()
            .await
            .unwrap()
    }

    /// Opens the form and submits `input` (which has mistakes) three times,
    /// as a citizen stuck on it does: from the third try the failure is
    /// logged and the page shows its reference code. The last answer.
    pub async fn register_stuck(&self, input: &mut Registration) -> reqwest::Response {
        let (csrf, submission) = self.open_register_form().await;
        input.csrf_token = csrf;
        input.submission_id = submission;
        for _ in 0..emeterai::services::registration::FREE_FORM_TRIES {
            let response = self.post_register(input).await;
            let html = response.text().await.unwrap();
            assert!(
                reference_code(&html).is_none(),
                "a typo got a reference code"
            );
        }
        self.post_register(input).await
    }

    /// Signs in with a wrong password three times, as a citizen who cannot
    /// remember it does: the first tries are neither logged nor given a
    /// reference code; the third is. The last answer.
    pub async fn login_stuck(&self, email: &str, password: &str) -> reqwest::Response {
        for _ in 0..emeterai::services::accounts::FREE_SIGN_IN_TRIES {
            let html = self.login(email, password).await.text().await.unwrap();
            assert!(
                reference_code(&html).is_none(),
                "a first wrong password got a reference code"
            );
        }
        self.login(email, password).await
    }

    /// The CSRF token of any page with a form.
    pub async fn csrf_from(&self, path: &str) -> String {
        let (_, html) = self.get_html(path).await;
        attr_after(&html, r#"name="csrf_token""#, "value").expect("csrf_token")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf_from("/password/forgot").await;
        self.client
            .post(self.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Opens a mailed link (`/verify?token=...`) in this browser and
    /// chooses the password there: the response to `POST /verify`.
    pub async fn choose_password(
        &self,
        link_path: &str,
        password: &str,
        confirm: &str,
    ) -> reqwest::Response {
        self.choose_password_in(&self.client, link_path, password, confirm)
            .await
    }

    /// The same in another browser (`client`).
    pub async fn choose_password_in(
        &self,
        client: &reqwest::Client,
        link_path: &str,
        password: &str,
        confirm: &str,
    ) -> reqwest::Response {
        let page = client.get(self.url(link_path)).send().await.unwrap();
        let status = page.status();
        let html = page.text().await.unwrap();
        assert_eq!(status, 200, "{html}");
        let csrf = attr_after(&html, r#"name="csrf_token""#, "value").expect("csrf_token");
        let token = attr_after(&html, r#"name="token""#, "value").expect("token");
        client
            .post(self.url("/verify"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("token", token.as_str()),
                ("password", password),
                ("password_confirm", confirm),
            ])
            .send()
            .await
            .expect("POST /verify")
    }

    /// Registers `input`, opens the mailed link and chooses the password
    /// (`input.password`): the citizen is signed in afterwards.
    pub async fn register_and_verify(&self, input: &mut Registration) {
        let email = input.email.trim().to_lowercase();
        // Counted before registering: the mail may arrive before the answer.
        let count = self
            .mail
            .accepted()
            .iter()
            .filter(|m| m.to[0] == email)
            .count();
        let response = self.register(input).await;
        assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
        let mails = self.wait_for_mail(&email, count + 1).await;
        let path = crate::mail_stub::verification_path(mails.last().unwrap());
        let response = self
            .choose_password(&path, &input.password, &input.password)
            .await;
        assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            "/account?welcome=1"
        );
    }

    /// A fresh client: another browser, without this one's cookies.
    pub fn new_browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Finds the first reference code (`ERR-XXXX-XXXX`) in a page.
pub fn reference_code(html: &str) -> Option<String> {
    let alphabet = "23456789ABCDEFGHJKMNPQRSTWXYZ";
    html.match_indices('-').find_map(|(i, _)| {
        let start = i.checked_sub(3)?;
        let candidate = html.get(start..start + 13)?;
        let ok = candidate[..3].chars().all(|c| c.is_ascii_uppercase())
            && candidate.as_bytes()[3] == b'-'
            && candidate.as_bytes()[8] == b'-'
            && candidate[4..8]
                .chars()
                .chain(candidate[9..13].chars())
                .all(|c| alphabet.contains(c));
        ok.then(|| candidate.to_string())
    })
}

/// The value of the first `attr="..."` after `marker` in the page.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let key = format!("{attr}=\"");
    let start = rest.find(&key)? + key.len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].replace("&amp;", "&"))
}

/// Generates a `sqlite` and a `postgres` test from one async test function
/// taking the backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[actix_web::test]
            #[cfg_attr(not(postgres_tests), ignore = "set TEST_DATABASE_URL to run it on PostgreSQL")]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database_name("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database_name("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database_name("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }

    #[test]
    fn reference_codes_are_found() {
        assert_eq!(
            super::reference_code("<strong>ERR-7K3Q-9XWZ</strong>").as_deref(),
            Some("ERR-7K3Q-9XWZ")
        );
        assert_eq!(super::reference_code("no-code-here"), None);
    }
}

/// A citizen's answers to the registration form; valid by default.
#[derive(Clone)]
pub struct Registration {
    pub csrf_token: String,
    pub submission_id: String,
    pub full_name: String,
    pub nik: String,
    pub birth_date: String,
    pub email: String,
    pub phone: String,
    /// Chosen later, on the page the mailed link opens.
    pub password: String,
    pub npwp: String,
    pub agree_terms: bool,
    /// (file name, bytes); `None` leaves the file input empty.
    pub photo: Option<(String, Vec<u8>)>,
    pub ktp_upload_id: Option<String>,
}

/// The CSRF token of the form on `url`, opened with `client` (a browser
/// of its own).
pub async fn csrf_of(client: &reqwest::Client, url: String) -> String {
    let page = html_of(client, url).await;
    attr_after(&page, r#"name="csrf_token""#, "value").expect("csrf_token")
}

/// A 503 answer's page: the "busy" page in Bahasa Indonesia.
pub async fn busy_page(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 503);
    let html = response.text().await.unwrap();
    assert!(html.contains("Layanan sedang sibuk"), "{html}");
    html
}

/// The page on `url` as `client` (a browser of its own) sees it.
pub async fn html_of(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A file that is a JPEG by its first bytes only (it does not decode).
pub fn fake_jpeg(size: usize) -> Vec<u8> {
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];
    data.resize(size, 0x42);
    data
}

/// Encodes an image as a file of `format`.
pub fn encode_image(image: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A readable KTP photo: a real 1200 x 760 JPEG (made once per run).
pub fn ktp_jpeg() -> Vec<u8> {
    static PHOTO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PHOTO
        .get_or_init(|| {
            let image = image::RgbImage::from_fn(1200, 760, |x, y| {
                image::Rgb([(x / 5) as u8, (y / 3) as u8, 160])
            });
            encode_image(&image, image::ImageFormat::Jpeg)
        })
        .clone()
}

/// A photo full of fine detail (noise), which stays large as a JPEG: about
/// 0.7-1 MB once stored.
pub fn noisy_jpeg(seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let image = image::RgbImage::from_fn(1600, 1200, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    encode_image(&image, image::ImageFormat::Jpeg)
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            csrf_token: String::new(),
            submission_id: String::new(),
            full_name: "Siti Aminah".into(),
            // A woman born 17 August 1995 (day 17 + 40 = 57).
            nik: "3578 0157 0895 0001".into(),
            birth_date: "1995-08-17".into(),
            email: "siti.aminah@example.co.id".into(),
            phone: "0812-3456-7890".into(),
            password: "kopi tubruk pagi hari".into(),
            npwp: String::new(),
            agree_terms: true,
            photo: Some(("ktp-siti.jpg".into(), ktp_jpeg())),
            ktp_upload_id: None,
        }
    }
}

impl Registration {
    /// Another valid citizen.
    pub fn budi() -> Self {
        Registration {
            full_name: "Budi Santoso".into(),
            nik: "3201011708900003".into(),
            birth_date: "1990-08-17".into(),
            email: "budi@example.com".into(),
            phone: "+62 813 1111 2222".into(),
            ..Default::default()
        }
    }

    pub fn to_form(&self) -> reqwest::multipart::Form {
        let mut form = reqwest::multipart::Form::new()
            .text("csrf_token", self.csrf_token.clone())
            .text("submission_id", self.submission_id.clone())
            .text("full_name", self.full_name.clone())
            .text("nik", self.nik.clone())
            .text("birth_date", self.birth_date.clone())
            .text("email", self.email.clone())
            .text("phone", self.phone.clone())
            .text("npwp", self.npwp.clone());
        if self.agree_terms {
            form = form.text("agree_terms", "on");
        }
        if let Some(id) = &self.ktp_upload_id {
            form = form.text("ktp_upload_id", id.clone());
        }
        let part = match &self.photo {
            Some((name, data)) => reqwest::multipart::Part::bytes(data.clone())
                .file_name(name.clone())
                .mime_str("image/jpeg")
                .unwrap(),
            // What a browser sends for an empty file input.
            None => reqwest::multipart::Part::bytes(Vec::new())
                .file_name("")
                .mime_str("application/octet-stream")
                .unwrap(),
        };
        form.part("ktp_photo", part)
    }
}
