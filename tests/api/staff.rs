//! The support staff console, on both backends.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use emeterai::failures::NewFailureRow;
use emeterai::schema::{failures, staff_audit};

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::on_both_backends;

const STAFF_EMAIL: &str = "petugas@peruri.test";
const STAFF_PASSWORD: &str = "kopi tubruk pagi hari siang";

pub(crate) fn create_staff(app: &TestApp, email: &str, password: &str) {
    let mut conn = app.state.pool.get().unwrap();
    let hash = bcrypt::hash(password, 4).unwrap();
    emeterai::db::staff::create(&mut conn, email, &hash, Utc::now().naive_utc()).unwrap();
}

/// Signs in with `client` (a browser of its own); returns the answer.
pub(crate) async fn staff_sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = client
        .get(app.url("/staff/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
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
    }
}

fn insert(app: &TestApp, rows: &[NewFailureRow]) {
    let mut conn = app.state.pool.get().unwrap();
    for row in rows {
        diesel::insert_into(failures::table)
            .values(row)
            .execute(&mut *conn)
            .unwrap();
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
        .register(&mut Registration {
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
    assert!(audit.contains("failure_resolve") && audit.contains(STAFF_EMAIL));
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
    let form = app.register(&mut other).await.text().await.unwrap();
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
    let filled =
        emeterai::db::accounts::backfill_nik_hashes(&mut conn, |n| app.state.failures.nik_hash(n))
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
    for _ in 0..5 {
        let response = staff_sign_in(&app, &client, STAFF_EMAIL, "bukan kata sandinya").await;
        assert_eq!(response.status(), 422);
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
    // Noon WIB on two days.
    let day = |d: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 11, d)
            .unwrap()
            .and_hms_opt(5, 0, 0)
            .unwrap()
    };
    insert(
        &app,
        &[
            failure("STA-0000-0001", day(20), "validation", None, None, &app),
            failure("STA-0000-0002", day(20), "validation", None, None, &app),
            failure("STA-0000-0003", day(20), "stale_form", None, None, &app),
            failure("STA-0000-0004", day(21), "stale_form", None, None, &app),
            // 18:00 UTC on the 21st is 01:00 WIB on the 22nd.
            failure(
                "STA-0000-0005",
                day(21) + Duration::hours(13),
                "validation",
                None,
                None,
                &app,
            ),
        ],
    );
    let (status, page) = html(&staff, &app, "/staff/stats?from=2026-11-19&to=2026-11-22").await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg role=\"img\""));
    assert_eq!(page.matches("<rect x=\"1\"").count(), 4, "four segments");
    assert!(
        page.contains("<th scope=\"row\">2026-11-22</th><td>1</td><td>0</td><td>1</td>"),
        "WIB day"
    );
    assert!(
        page.contains("<th scope=\"row\">2026-11-20</th><td>2</td><td>1</td><td>3</td>"),
        "{page}"
    );
    assert!(page.contains("<th scope=\"row\">2026-11-21</th><td>0</td><td>1</td><td>1</td>"));
    assert!(page.contains("<th scope=\"row\">2026-11-19</th><td>0</td><td>0</td><td>0</td>"));
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
