//! The support staff console, on both backends.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use emeterai::schema::staff_audit;
use emeterai::services::failures::NewFailureRow;

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::on_both_backends;

pub(crate) const STAFF_EMAIL: &str = "petugas@peruri.test";
pub(crate) const STAFF_PASSWORD: &str = "kopi tubruk pagi hari siang";

/// The authenticator app's key of every staff account the tests create.
pub(crate) const STAFF_TOTP_KEY: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Recovery codes of every test staff account: `rcvry00000` to `rcvry00009`.
pub(crate) fn recovery_code(n: usize) -> String {
    format!("rcvry{n:05}")
}

/// A staff account with its second factor enrolled (key [`STAFF_TOTP_KEY`],
/// recovery codes [`recovery_code`]).
pub(crate) fn create_staff(app: &TestApp, email: &str, password: &str) {
    let mut conn = app.state.pool.get().unwrap();
    let hash = bcrypt::hash(password, 4).unwrap();
    let now = Utc::now().naive_utc();
    emeterai::db::staff::create(&mut conn, email, &hash, now).unwrap();
    let id = emeterai::db::staff::find_by_email(&mut conn, email)
        .unwrap()
        .unwrap()
        .id;
    let hashes: Vec<String> = (0..10)
        .map(|n| emeterai::domain::second_factor::recovery_code_hash(&recovery_code(n)).unwrap())
        .collect();
    emeterai::db::staff::enrol_second_factor(&mut conn, &id, STAFF_TOTP_KEY, None, &hashes, false)
        .unwrap();
}

/// The authenticator app's code now, or (when this step's code was already
/// used: the tests sign in quickly) the next step's, which is accepted too.
pub(crate) fn current_code(app: &TestApp, email: &str) -> String {
    let secret = emeterai::domain::second_factor::TotpSecret::from_base32(STAFF_TOTP_KEY).unwrap();
    let now = Utc::now().timestamp() as u64;
    let mut conn = app.state.pool.get().unwrap();
    let last = emeterai::db::staff::find_by_email(&mut conn, email)
        .unwrap()
        .and_then(|s| s.totp_last_step);
    let step = (now / 30) as i64;
    let step = match last {
        Some(last) if last >= step => last + 1,
        _ => step,
    };
    secret.code_at(step as u64 * 30)
}

/// Signs in with `client` (a browser of its own): the password, then the
/// authenticator code when asked for it; returns the last answer.
pub(crate) async fn staff_sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let response = staff_password_step(app, client, email, password).await;
    if response.status() != 303 || response.headers()["location"] != "/staff/login/code" {
        return response;
    }
    staff_code_step(app, client, &current_code(app, email)).await
}

/// The staff member's stored TOTP secret is sealed, not `key` in clear.
fn assert_sealed(app: &TestApp, email: &str, key: &str) {
    let mut conn = app.state.pool.get().unwrap();
    let stored = emeterai::db::staff::find_by_email(&mut conn, email)
        .unwrap()
        .unwrap()
        .totp_secret
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.to_uppercase().contains(key), "{stored}");
}

/// A secret stored in clear by an older portal still signs in, and is
/// sealed from then on (and still signs in, sealed).
async fn a_secret_stored_in_clear_is_sealed_at_the_next_sign_in(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    create_staff(&app, STAFF_EMAIL, STAFF_PASSWORD);
    let response = staff_sign_in(&app, &app.new_browser(), STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.headers()["location"], "/staff/failures");
    assert_sealed(&app, STAFF_EMAIL, STAFF_TOTP_KEY);
    let response = staff_sign_in(&app, &app.new_browser(), STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.headers()["location"], "/staff/failures");
}

/// The first step only: email and password.
pub(crate) async fn staff_password_step(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let csrf = crate::helpers::csrf_of(client, app.url("/staff/login")).await;
    client
        .post(app.url("/staff/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// The second step: sends `code` from the code page.
pub(crate) async fn staff_code_step(
    app: &TestApp,
    client: &reqwest::Client,
    code: &str,
) -> reqwest::Response {
    let csrf = crate::helpers::csrf_of(client, app.url("/staff/login/code")).await;
    client
        .post(app.url("/staff/login/code"))
        .form(&[("csrf_token", csrf.as_str()), ("code", code)])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn signed_in_staff(app: &TestApp) -> reqwest::Client {
    create_staff(app, STAFF_EMAIL, STAFF_PASSWORD);
    let client = app.new_browser();
    let response = staff_sign_in(app, &client, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/staff/failures");
    client
}

async fn html(client: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let response = client.get(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn failure(
    reference: &str,
    at: NaiveDateTime,
    reason: &str,
    email: Option<&str>,
    nik: Option<&str>,
    app: &TestApp,
) -> NewFailureRow {
    NewFailureRow {
        reference: reference.to_string(),
        occurred_at: at,
        reason: reason.to_string(),
        fields: if reason == "validation" {
            "nik,phone".into()
        } else {
            String::new()
        },
        email: email.map(str::to_string),
        nik_masked: nik.map(emeterai::domain::mask_nik),
        nik_hash: nik.map(|n| app.state.failures.nik_hash(n)),
        client_ip: Some("203.0.113.0".into()),
        user_agent: Some("Mozilla/5.0 (Linux; Android 14)".into()),
        path: "/register".into(),
        email_shape: None,
        email_sealed: None,
        data_key_id: None,
    }
}

/// Writes the rows as the portal does (emails sealed).
fn insert(app: &TestApp, rows: &[NewFailureRow]) {
    let mut conn = app.state.pool.get().unwrap();
    for row in rows {
        emeterai::services::failures::insert(&mut conn, &app.state.keys, row).unwrap();
    }
}

/// `n` failures a minute apart, newest first at `end`, references
/// `TST-0000-0000` style in the same order.
fn series(app: &TestApp, n: usize, end: NaiveDateTime, prefix: &str) -> Vec<NewFailureRow> {
    (0..n)
        .map(|i| {
            failure(
                &format!("{prefix}-{:04}-{:04}", i / 10_000, i % 10_000),
                end - Duration::minutes(i as i64),
                if i % 3 == 0 {
                    "email_taken"
                } else {
                    "validation"
                },
                Some(&format!("orang{i}@example.com")),
                Some("3201011708900003"),
                app,
            )
        })
        .collect()
}

fn references_on(page: &str) -> Vec<String> {
    page.match_indices(r#"href="/staff/failures/"#)
        .map(|(i, m)| page[i + m.len()..i + m.len() + 13].to_string())
        .collect()
}

async fn staff_pages_are_closed_to_everyone_else(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A citizen, signed in: still no staff page.
    app.register_and_verify(&mut Registration::default()).await;
    assert_eq!(
        app.login("siti.aminah@example.co.id", "kopi tubruk pagi hari")
            .await
            .status(),
        303
    );
    insert(
        &app,
        &[failure(
            "TST-0000-0001",
            Utc::now().naive_utc(),
            "validation",
            None,
            None,
            &app,
        )],
    );
    for path in [
        "/staff/failures",
        "/staff/failures/TST-0000-0001",
        "/staff/stats",
        "/staff/audit",
    ] {
        for client in [&app.client, &app.new_browser()] {
            let response = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 303, "{path}");
            assert_eq!(response.headers()["location"], "/staff/login", "{path}");
        }
    }
    let csv = app
        .client
        .get(app.url("/staff/failures.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 401);
    let post = app
        .client
        .post(app.url("/staff/failures/TST-0000-0001/resolve"))
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 303);
    assert_eq!(post.headers()["location"], "/staff/login");
    // A forged staff cookie is not a session.
    let forged = app
        .new_browser()
        .get(app.url("/staff/failures"))
        .header("cookie", "emeterai_staff=admin|0|9999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303);
}

async fn list_filters_narrow_and_mask(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let now = Utc::now().naive_utc();
    insert(
        &app,
        &[
            failure(
                "AAA-0000-0001",
                now - Duration::minutes(1),
                "validation",
                Some("budi@example.com"),
                Some("3201011708900003"),
                &app,
            ),
            failure(
                "AAA-0000-0002",
                now - Duration::minutes(2),
                "email_taken",
                Some("siti@example.com"),
                Some("3578015708950001"),
                &app,
            ),
            failure(
                "AAA-0000-0003",
                now - Duration::days(10),
                "validation",
                Some("budi@example.com"),
                Some("3578015708950001"),
                &app,
            ),
        ],
    );
    let (status, page) = html(&staff, &app, "/staff/failures").await;
    assert_eq!(status, 200);
    assert_eq!(
        references_on(&page),
        ["AAA-0000-0001", "AAA-0000-0002", "AAA-0000-0003"]
    );
    assert!(
        page.contains("bu***@example.com"),
        "emails masked in the list"
    );
    assert!(!page.contains("budi@example.com"));
    assert!(page.contains("3201********0003"));
    assert!(!page.contains("3201011708900003"));

    let cases: [(&str, &[&str]); 6] = [
        ("reason=validation", &["AAA-0000-0001", "AAA-0000-0003"]),
        ("q=budi%40example.com", &["AAA-0000-0001", "AAA-0000-0003"]),
        ("q=aaa-0000-0002", &["AAA-0000-0002"]),
        ("q=3578+0157+0895+0001", &["AAA-0000-0002", "AAA-0000-0003"]),
        ("reason=validation&q=3578015708950001", &["AAA-0000-0003"]),
        ("from=2000-01-01&to=2000-01-02", &[]),
    ];
    for (query, expected) in cases {
        let (status, page) = html(&staff, &app, &format!("/staff/failures?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(references_on(&page), expected, "{query}");
    }
    let today = (now + Duration::hours(7)).date().format("%Y-%m-%d");
    let (_, page) = html(
        &staff,
        &app,
        &format!("/staff/failures?from={today}&to={today}"),
    )
    .await;
    assert_eq!(references_on(&page), ["AAA-0000-0001", "AAA-0000-0002"]);
    // Bad input is explained, not a crash.
    let (status, page) = html(&staff, &app, "/staff/failures?from=kemarin").await;
    assert_eq!(status, 400);
    assert!(page.contains("TTTT-BB-HH"));
    let (status, _) = html(&staff, &app, "/staff/failures?q=budi").await;
    assert_eq!(status, 400);
}

/// Every query parameter that reaches a date or a number, with the values
/// at the edges of what the types hold: a page with a 4xx status (or the
/// page itself), never a panic or a 500.
async fn extreme_query_values_get_a_page_not_a_crash(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let extremes = [
        "-262143-01-01",
        "262142-12-31",
        "+262142-12-31",
        "0000-00-00",
        "9999-12-31",
        "1970-01-01",
        "2026-02-30",
        "99999999999999999999",
        "-1",
        "%00",
    ];
    for value in extremes {
        for path in [
            format!("/staff/failures?from={value}"),
            format!("/staff/failures?to={value}"),
            format!("/staff/failures?from=2026-01-01&to={value}"),
            format!("/staff/failures.csv?from={value}"),
            format!("/staff/failures?before={value}"),
            format!("/staff/stats?from={value}"),
            format!("/staff/stats?to={value}"),
        ] {
            let response = staff.get(app.url(&path)).send().await.unwrap();
            let status = response.status().as_u16();
            assert!(
                (200..500).contains(&status),
                "{path}: {status}: {}",
                response.text().await.unwrap()
            );
        }
    }
    for path in [
        "/verify?token=".to_string() + &"f".repeat(10_000),
        "/password/reset?token=%FF%FE".to_string(),
        "/register/check-email?notice=%00&ref=".to_string() + &"Z".repeat(500),
        "/account?welcome=".to_string() + &"9".repeat(100),
    ] {
        let status = app.get(&path).await.status().as_u16();
        assert!((200..500).contains(&status), "{path}: {status}");
    }
    // The server still answers.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

async fn pagination_is_stable_while_failures_arrive(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let start = Utc::now().naive_utc() - Duration::hours(1);
    insert(&app, &series(&app, 120, start, "OLD"));
    let (_, first) = html(&staff, &app, "/staff/failures").await;
    let first_refs = references_on(&first);
    assert_eq!(first_refs.len(), 50);
    // The link whose text is "Halaman berikutnya": its href comes before.
    let next = first.find("Halaman berikutnya").and_then(|i| {
        let before = &first[..i];
        let start = before.rfind("href=\"")? + 6;
        Some(before[start..].split('"').next()?.replace("&amp;", "&"))
    });
    let next = next.expect("next page link");
    // New failures arrive before the citizen's record is reached.
    insert(&app, &series(&app, 30, Utc::now().naive_utc(), "NEW"));
    let (_, second) = html(&staff, &app, &next).await;
    let second_refs = references_on(&second);
    assert_eq!(second_refs.len(), 50);
    let expected: Vec<String> = (50..100).map(|i| format!("OLD-0000-{i:04}")).collect();
    assert_eq!(
        second_refs, expected,
        "the second page continues where the first ended"
    );
}

async fn csv_export_matches_the_list(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let mut rows = series(&app, 1205, Utc::now().naive_utc(), "CSV");
    rows[0].user_agent = Some("=cmd|' /C calc'!A0, \"quoted\"".into());
    insert(&app, &rows);
    let response = staff
        .get(app.url("/staff/failures.csv?reason=email_taken"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "occurred_at_wib,reference,reason,fields,email,nik,client_ip,user_agent,path,resolved"
    );
    let expected = rows.iter().filter(|r| r.reason == "email_taken").count();
    assert_eq!(
        lines.len() - 1,
        expected,
        "every filtered row, across batches"
    );
    // The same rows, in the same order, as the list's first page.
    let (_, page) = html(&staff, &app, "/staff/failures?reason=email_taken").await;
    let listed = references_on(&page);
    let exported: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(&exported[..listed.len()], listed.as_slice());
    assert!(
        lines[1].contains("or***@example.com"),
        "masked like the list"
    );
    assert!(lines[1].contains("3201********0003"));
    assert!(!body.contains("3201011708900003"));
    assert!(
        lines[1].contains("\"'=cmd|' /C calc'!A0, \"\"quoted\"\"\""),
        "{}",
        lines[1]
    );
}

async fn detail_shows_the_whole_story_and_actions_work(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 0).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    // A citizen registers, and later fails with the same email.
    app.register(&mut Registration::default()).await;
    app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let response = app
        .register_stuck(&mut Registration {
            phone: "021".into(),
            ..Default::default()
        })
        .await;
    let form = response.text().await.unwrap();
    let i = form.find("DFT-").unwrap();
    let reference = form[i..i + 13].to_string();

    let (status, page) = html(&staff, &app, &format!("/staff/failures/{reference}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("siti.aminah@example.co.id"),
        "whole email in the detail"
    );
    assert!(page.contains("3578********0001"));
    assert!(
        page.contains("Pendaftaran diterima, menunggu kata sandi"),
        "{page}"
    );
    assert!(page.contains("Email diantrekan") && page.contains("Email terkirim"));
    assert!(page.contains("Isian tidak valid"));

    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    for (action, note, done) in [
        ("note", "Menelepon 1500 159, dibantu.", "note"),
        ("resend", "", "resent"),
        ("resolve", "", "resolved"),
    ] {
        let response = staff
            .post(app.url(&format!("/staff/failures/{reference}/{action}")))
            .form(&[("csrf_token", csrf.as_str()), ("note", note)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{action}");
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            format!("/staff/failures/{reference}?done={done}")
        );
    }
    app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    let (_, page) = html(&staff, &app, &format!("/staff/failures/{reference}")).await;
    assert!(page.contains("Menelepon 1500 159, dibantu."));
    assert!(page.contains(&format!("Diselesaikan oleh {STAFF_EMAIL}")));

    // Audit: sign-in, views, actions.
    let mut conn = app.state.pool.get().unwrap();
    let actions: Vec<String> = staff_audit::table
        .select(staff_audit::action)
        .order(staff_audit::at.asc())
        .load(&mut *conn)
        .unwrap();
    for expected in [
        "sign_in",
        "view_failure",
        "failure_note",
        "failure_resend",
        "failure_resolve",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not in {actions:?}"
        );
    }
    drop(conn);
    let (status, audit) = html(&staff, &app, "/staff/audit").await;
    assert_eq!(status, 200);
    assert!(audit.contains("Menandai selesai") && audit.contains(STAFF_EMAIL));
    assert!(!audit.contains("failure_resolve"), "a raw action name");
}

/// A failure under another email but the same NIK leads staff to the
/// citizen's account, its mails, and lets them re-send its link.
async fn detail_finds_the_account_by_nik_under_another_email(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 0).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    app.register(&mut Registration::default()).await;
    app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let mut other = Registration {
        email: "siti.lain@example.com".into(),
        phone: "021".into(),
        ..Default::default()
    };
    let form = app.register_stuck(&mut other).await.text().await.unwrap();
    let i = form.find("DFT-").unwrap();
    let reference = form[i..i + 13].to_string();

    let (_, page) = html(&staff, &app, &format!("/staff/failures/{reference}")).await;
    assert!(
        page.contains("Pendaftaran dengan NIK ini (email lain)"),
        "{page}"
    );
    assert!(page.contains("siti.aminah@example.co.id"));
    assert!(page.contains("Pendaftaran diterima") && page.contains("Email terkirim"));
    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    let response = staff
        .post(app.url(&format!("/staff/failures/{reference}/resend")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/staff/failures/{reference}?done=resent")
    );
    app.wait_for_mail("siti.aminah@example.co.id", 2).await;
}

/// Accounts made before the NIK hash existed get theirs at start-up.
async fn older_accounts_get_their_nik_hash(backend: Backend) {
    use emeterai::schema::accounts;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    let mut conn = app.state.pool.get().unwrap();
    diesel::update(accounts::table)
        .set(accounts::nik_hash.eq(None::<String>))
        .execute(&mut *conn)
        .unwrap();
    let filled = emeterai::db::accounts::backfill_nik_hashes(&mut conn, &app.state.keys, |n| {
        app.state.failures.nik_hash(n)
    })
    .unwrap();
    assert_eq!(filled, 1);
    let hash: Option<String> = accounts::table
        .select(accounts::nik_hash)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(hash, Some(app.state.failures.nik_hash("3578015708950001")));
}

async fn lockout_after_repeated_failures(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    create_staff(&app, STAFF_EMAIL, STAFF_PASSWORD);
    let client = app.new_browser();
    // Five wrong passwords, each after the wait the one before asked for.
    let mut wrong = 0;
    while wrong < 5 {
        let response = staff_sign_in(&app, &client, STAFF_EMAIL, "bukan kata sandinya").await;
        match response.status().as_u16() {
            422 => wrong += 1,
            429 => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(wait <= 2, "{wait}");
                // The page says to wait a moment, not that the account is locked.
                let page = response.text().await.unwrap();
                assert!(page.contains("Tunggu sebentar"), "{page}");
                tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 50)).await;
            }
            other => panic!("status {other}"),
        }
    }
    let response = staff_sign_in(&app, &client, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert!(response.text().await.unwrap().contains("dikunci"));
    assert_eq!(
        client
            .get(app.url("/staff/failures"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

async fn disabled_staff_lose_their_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    assert_eq!(
        staff
            .get(app.url("/staff/failures"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    {
        let mut conn = app.state.pool.get().unwrap();
        assert!(
            emeterai::db::staff::disable(&mut conn, STAFF_EMAIL, Utc::now().naive_utc()).unwrap()
        );
    }
    assert_eq!(
        staff
            .get(app.url("/staff/failures"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    let response = staff_sign_in(&app, &app.new_browser(), STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.status(), 422);
}

async fn stats_chart_and_table_count_by_reason_and_day(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    // Four WIB days ending ten days ago (inside retention, whatever the
    // date the test runs on); times at noon WIB (05:00 UTC).
    let first = app.state.clock.today_in_indonesia() - chrono::Days::new(13);
    let date = |n: u64| first + chrono::Days::new(n);
    let day = |n: u64| date(n).and_hms_opt(5, 0, 0).unwrap();
    let row = |n: u64, cells: &str| format!("<th scope=\"row\">{}</th>{cells}", date(n));
    insert(
        &app,
        &[
            failure("STA-0000-0001", day(1), "validation", None, None, &app),
            failure("STA-0000-0002", day(1), "validation", None, None, &app),
            failure("STA-0000-0003", day(1), "stale_form", None, None, &app),
            failure("STA-0000-0004", day(2), "stale_form", None, None, &app),
            // 18:00 UTC on the second day is 01:00 WIB on the third.
            failure(
                "STA-0000-0005",
                day(2) + Duration::hours(13),
                "validation",
                None,
                None,
                &app,
            ),
            // Sign-in and link problems are no failed registrations.
            failure("STA-0000-0006", day(1), "sign_in_failed", None, None, &app),
            failure("STA-0000-0007", day(1), "link_expired", None, None, &app),
            failure("STA-0000-0008", day(2), "sign_in_failed", None, None, &app),
        ],
    );
    let (status, page) = html(
        &staff,
        &app,
        &format!("/staff/stats?from={}&to={}", date(0), date(3)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg role=\"img\""));
    assert_eq!(page.matches("<rect x=\"1\"").count(), 4, "four segments");
    assert!(
        page.contains(&row(3, "<td>1</td><td>0</td><td>1</td>")),
        "WIB day"
    );
    assert!(
        page.contains(&row(1, "<td>2</td><td>1</td><td>3</td>")),
        "{page}"
    );
    assert!(page.contains(&row(2, "<td>0</td><td>1</td><td>1</td>")));
    assert!(page.contains(&row(0, "<td>0</td><td>0</td><td>0</td>")));
    // Their own table, after the chart's: link expired, sign-in, total.
    let access = &page[page
        .find("Masalah masuk dan tautan per hari</h2>")
        .expect("access table")..];
    assert!(
        access.contains(&row(1, "<td>1</td><td>1</td><td>2</td>")),
        "{access}"
    );
    assert!(access.contains(&row(2, "<td>0</td><td>1</td><td>1</td>")));
    // The value axis is labelled (0, 2 and 5 for a highest day of 3).
    assert!(
        page.contains(">5</text>") && page.contains(">0</text>"),
        "{page}"
    );
    let (status, _) = html(&staff, &app, "/staff/stats?from=2026-11-21&to=2026-11-01").await;
    assert_eq!(status, 400);
}

on_both_backends!(
    extreme_query_values_get_a_page_not_a_crash,
    staff_pages_are_closed_to_everyone_else,
    list_filters_narrow_and_mask,
    pagination_is_stable_while_failures_arrive,
    csv_export_matches_the_list,
    detail_shows_the_whole_story_and_actions_work,
    detail_finds_the_account_by_nik_under_another_email,
    older_accounts_get_their_nik_hash,
    lockout_after_repeated_failures,
    disabled_staff_lose_their_session,
    stats_chart_and_table_count_by_reason_and_day,
);

/// A reversed date range says so (400) instead of showing an empty list;
/// staff pages carry no citizen contact footer.
async fn a_reversed_date_range_is_explained(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let (status, page) = html(
        &staff,
        &app,
        "/staff/failures?from=2026-11-20&to=2026-11-10",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("Tanggal akhir lebih awal dari tanggal awal"),
        "{page}"
    );
    let (status, page) = html(
        &staff,
        &app,
        "/staff/failures?from=2026-11-10&to=2026-11-10",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!page.contains("Hubungi Contact Center"), "{page}");
}

on_both_backends!(a_reversed_date_range_is_explained);

/// The second factor: the password alone opens nothing; the code does,
/// once; recovery codes work once each; every use is audited.
async fn the_second_factor_is_asked_for_and_used_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    create_staff(&app, STAFF_EMAIL, STAFF_PASSWORD);
    let client = app.new_browser();
    let response = staff_password_step(&app, &client, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/staff/login/code");
    // The right password alone is no session.
    let (status, _) = html(&client, &app, "/staff/failures").await;
    assert_eq!(status, 303);
    let (status, page) = html(&client, &app, "/staff/login/code").await;
    assert_eq!(status, 200);
    assert!(page.contains("Kode dari aplikasi autentikator"), "{page}");
    // A wrong code: the page again, 422.
    let response = staff_code_step(&app, &client, "000000").await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("Kode salah"));
    let code = current_code(&app, STAFF_EMAIL);
    let response = staff_code_step(&app, &client, &code).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/staff/failures");
    assert_eq!(html(&client, &app, "/staff/failures").await.0, 200);

    // The same code again, from another browser with the right password:
    // refused (RFC 6238: a code is accepted once).
    let thief = app.new_browser();
    staff_password_step(&app, &thief, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(staff_code_step(&app, &thief, &code).await.status(), 422);
    // A recovery code works once.
    let response = staff_code_step(&app, &thief, &recovery_code(3).to_uppercase()).await;
    assert_eq!(response.status(), 303);
    let again = app.new_browser();
    staff_password_step(&app, &again, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(
        staff_code_step(&app, &again, &recovery_code(3))
            .await
            .status(),
        422
    );
    let mut conn = app.state.pool.get().unwrap();
    let actions: Vec<String> = staff_audit::table
        .select(staff_audit::action)
        .order(staff_audit::at.asc())
        .load(&mut *conn)
        .unwrap();
    assert_eq!(actions, ["sign_in", "sign_in_recovery_code"]);
    let id = emeterai::db::staff::find_by_email(&mut conn, STAFF_EMAIL)
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        emeterai::db::staff::recovery_codes_left(&mut conn, &id).unwrap(),
        9
    );
}

/// A staff member without a second factor sets it up at the first
/// sign-in: the key on the page, a code from it, then the recovery codes
/// once; parallel codes for the same step sign in once.
async fn the_first_sign_in_enrols_the_authenticator(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    {
        let mut conn = app.state.pool.get().unwrap();
        let hash = bcrypt::hash(STAFF_PASSWORD, 4).unwrap();
        emeterai::db::staff::create(&mut conn, STAFF_EMAIL, &hash, Utc::now().naive_utc()).unwrap();
    }
    let client = app.new_browser();
    let response = staff_password_step(&app, &client, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.headers()["location"], "/staff/login/code");
    let (_, page) = html(&client, &app, "/staff/login/code").await;
    assert!(page.contains("Pasang verifikasi dua langkah"), "{page}");
    assert!(page.contains("<svg class=\"qr\""), "a QR code is drawn");
    assert!(page.contains("otpauth://totp/"));
    let marker = r#"<p class="totp-key"><code>"#;
    let key_start = page.find(marker).unwrap() + marker.len();
    let key: String = page[key_start..page[key_start..].find('<').unwrap() + key_start]
        .split_whitespace()
        .collect();
    // The page shows the same key on every reload until it is confirmed.
    assert!(
        html(&client, &app, "/staff/login/code")
            .await
            .1
            .contains(&key[..4])
    );
    let secret = emeterai::domain::second_factor::TotpSecret::from_base32(&key).unwrap();
    let code = secret.code_at(Utc::now().timestamp() as u64);
    let response = staff_code_step(&app, &client, &code).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("Kode pemulihan Anda"), "{page}");
    // The secret is stored sealed: the database alone does not give it.
    assert_sealed(&app, STAFF_EMAIL, &key);
    let shown: Vec<&str> = page.split("<li><code>").skip(1).map(|c| &c[..11]).collect();
    assert_eq!(shown.len(), 10);
    // Signed in by that answer.
    assert_eq!(html(&client, &app, "/staff/failures").await.0, 200);
    // The shown recovery codes are the stored ones.
    let other = app.new_browser();
    staff_password_step(&app, &other, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(staff_code_step(&app, &other, shown[0]).await.status(), 303);

    // Two browsers send the next step's code at the same moment: one
    // signs in.
    let next = secret.code_at((Utc::now().timestamp() as u64 / 30 + 1) * 30);
    let (a, b) = (app.new_browser(), app.new_browser());
    staff_password_step(&app, &a, STAFF_EMAIL, STAFF_PASSWORD).await;
    staff_password_step(&app, &b, STAFF_EMAIL, STAFF_PASSWORD).await;
    let (ra, rb) = tokio::join!(
        staff_code_step(&app, &a, &next),
        staff_code_step(&app, &b, &next)
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [303, 422]);
}

/// With the second factor turned off explicitly, the password signs in.
async fn the_second_factor_can_be_turned_off(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.staff_second_factor = "off".into()).await
    else {
        return;
    };
    create_staff(&app, STAFF_EMAIL, STAFF_PASSWORD);
    let client = app.new_browser();
    let response = staff_password_step(&app, &client, STAFF_EMAIL, STAFF_PASSWORD).await;
    assert_eq!(response.headers()["location"], "/staff/failures");
    assert_eq!(html(&client, &app, "/staff/failures").await.0, 200);
}

on_both_backends!(
    the_second_factor_is_asked_for_and_used_once,
    the_first_sign_in_enrols_the_authenticator,
    a_secret_stored_in_clear_is_sealed_at_the_next_sign_in,
    the_second_factor_can_be_turned_off,
);

/// `emeterai staff add/list/disable`, the real binary.
#[test]
fn staff_cli_adds_lists_and_disables() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emeterai"))
            .current_dir(dir.path())
            .env("EMETERAI_BCRYPT_COST", "4")
            .env_remove("DATABASE_URL")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(
        &["staff", "add", "--email", "Petugas@Peruri.Test"],
        "pendek\n",
    );
    assert!(!ok && out.contains("12 characters"), "{out}");
    let (ok, out) = run(
        &["staff", "add", "--email", "Petugas@Peruri.Test"],
        &format!("{STAFF_PASSWORD}\n"),
    );
    assert!(ok, "{out}");
    // The authenticator key and ten recovery codes, shown once.
    assert!(out.contains("otpauth://totp/"), "{out}");
    let key_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("key: "))
        .unwrap();
    let key: String = key_line.trim_start()[5..].split_whitespace().collect();
    assert!(emeterai::domain::second_factor::TotpSecret::from_base32(&key).is_some());
    // Stored sealed, not as printed.
    {
        use diesel::prelude::*;
        let mut conn = diesel::SqliteConnection::establish(
            dir.path().join("data/emeterai.sqlite3").to_str().unwrap(),
        )
        .unwrap();
        let stored: Option<String> = emeterai::schema::staff::table
            .select(emeterai::schema::staff::totp_secret)
            .first(&mut conn)
            .unwrap();
        let stored = stored.unwrap();
        assert!(
            stored.starts_with("v1:") && !stored.contains(&key),
            "{stored}"
        );
    }
    let codes_from = out.find("Recovery codes").unwrap();
    assert_eq!(
        out[codes_from..]
            .lines()
            .skip(1)
            .filter(|l| l.len() == 13)
            .count(),
        10,
        "{out}"
    );
    let (ok, out) = run(
        &[
            "staff",
            "reset-second-factor",
            "--email",
            "petugas@peruri.test",
        ],
        "",
    );
    assert!(ok && out.contains("second factor removed"), "{out}");
    let (ok, out) = run(
        &["staff", "add", "--email", "petugas@peruri.test"],
        &format!("{STAFF_PASSWORD}\n"),
    );
    assert!(!ok && out.contains("already exists"), "{out}");
    let (_, out) = run(&["staff", "list"], "");
    assert!(out.contains("petugas@peruri.test\tactive"), "{out}");
    let (ok, _) = run(&["staff", "disable", "--email", "petugas@peruri.test"], "");
    assert!(ok);
    let (_, out) = run(&["staff", "list"], "");
    assert!(out.contains("petugas@peruri.test\tdisabled"), "{out}");
}

/// The whole NIK and birth date are shown only on an explicit request
/// with a reason, which the audit log keeps; the page shows them once.
async fn the_full_nik_is_shown_only_with_a_reason_and_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    app.register_and_verify(&mut Registration::default()).await;
    let stuck = app
        .register_stuck(&mut Registration {
            phone: "021".into(),
            photo: None,
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    let reference = crate::helpers::reference_code(&stuck).unwrap();
    let detail = format!("/staff/failures/{reference}");
    let (status, page) = html(&staff, &app, &detail).await;
    assert_eq!(status, 200);
    assert!(!page.contains("3578015708950001"), "masked until asked");
    assert!(page.contains("Tampilkan NIK lengkap"), "{page}");
    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    let reveal = |reason: &'static str, client: reqwest::Client, csrf: String| {
        let url = app.url(&format!("{detail}/reveal"));
        async move {
            client
                .post(url)
                .form(&[("csrf_token", csrf.as_str()), ("reason", reason)])
                .send()
                .await
                .unwrap()
        }
    };
    let reveals = |app: &TestApp| -> Vec<String> {
        let mut conn = app.state.pool.get().unwrap();
        staff_audit::table
            .filter(staff_audit::action.eq("failure_reveal"))
            .select(staff_audit::target)
            .load(&mut *conn)
            .unwrap()
    };
    // No reason: nothing shown, nothing audited, the page says why.
    let response = reveal("  ", staff.clone(), csrf.clone()).await;
    assert_eq!(response.status(), 303);
    let (_, page) = html(&staff, &app, &format!("{detail}?done=reveal_reason")).await;
    assert!(page.contains("Tuliskan alasan"), "{page}");
    assert!(!page.contains("3578015708950001"));
    assert!(reveals(&app).is_empty());
    // Someone without a staff session gets nothing.
    let response = reveal("ingin tahu", app.new_browser(), csrf.clone()).await;
    assert_ne!(response.status(), 200);
    assert!(!response.text().await.unwrap().contains("3578015708950001"));
    // With a reason: shown on this answer, and audited with the reason.
    let response = reveal("mencocokkan data dengan penelepon", staff.clone(), csrf).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("3578015708950001"), "{page}");
    assert!(page.contains("1995-08-17"));
    assert_eq!(
        reveals(&app),
        [format!("{reference}: mencocokkan data dengan penelepon")]
    );
    // Opened again, the page is masked again.
    let (_, page) = html(&staff, &app, &detail).await;
    assert!(!page.contains("3578015708950001"));
}

on_both_backends!(the_full_nik_is_shown_only_with_a_reason_and_audited);
