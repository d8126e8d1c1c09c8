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
    postgres: Option<(String, String)>, // (admin URL, database name)
}

impl TestDb {
    /// `None` when the test asks for PostgreSQL and `TEST_DATABASE_URL` is
    /// unset on a developer machine. In CI it must be set.
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: dir.path().join("test.sqlite3").display().to_string(),
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
                let name = format!("emeterai_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                Some(TestDb {
                    url: with_database_name(&admin, &name),
                    dir,
                    postgres: Some((admin, name)),
                })
            }
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
        let db = TestDb::new(backend)?;
        let mut settings = Settings::with_database(db.url.clone(), db.dir.path().join("data"));
        settings.bind = ([127, 0, 0, 1], 0).into();
        settings.workers = Some(1);
        settings.bcrypt_cost = 4;
        settings.shutdown_timeout_secs = 0;
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
