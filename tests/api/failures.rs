//! Every failure ends on a page with a reference code, a next step and the
//! contact channels, and leaves one row in the failure log.

use diesel::prelude::*;
use emeterai::schema::failures;
use emeterai::services::failures::FailureRow;

use crate::helpers::{Backend, Registration, TestApp, attr_after, reference_code};
use crate::on_both_backends;

/// The reference code on a page, with the prefix expected.
fn code_on(html: &str, prefix: &str) -> String {
    let code = html
        .match_indices(&format!("{prefix}-"))
        .map(|(i, _)| &html[i..i + 13])
        .find(|c| reference_code(c).is_some())
        .unwrap_or_else(|| panic!("no {prefix} reference code in\n{html}"));
    code.to_string()
}

/// A failure row as staff read it (its email opened).
fn failure_row(app: &TestApp, reference: &str) -> FailureRow {
    let mut conn = app.state.pool.get().unwrap();
    emeterai::services::failures::find(&mut conn, &app.state.keys, reference)
        .unwrap()
        .unwrap_or_else(|| panic!("no failure row {reference}"))
}

fn failure_count(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    failures::table.count().get_result(&mut *conn).unwrap()
}

fn assert_guidance(html: &str) {
    assert!(html.contains("1500 159"), "contact channels");
    assert!(html.contains("wa.me/628119590159"), "WhatsApp");
}

async fn validation_failure_is_logged_without_values(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut input = Registration {
        phone: "021 555 1234".into(),
        birth_date: "1995-08-18".into(),
        ..Default::default()
    };
    let response = app.register_stuck(&mut input).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    let code = code_on(&html, "DFT");
    assert_guidance(&html);
    let row = failure_row(&app, &code);
    assert_eq!(row.reason, "validation");
    assert_eq!(row.fields, "birth_date,phone");
    assert_eq!(row.email.as_deref(), Some("siti.aminah@example.co.id"));
    assert_eq!(row.nik_masked.as_deref(), Some("3578********0001"));
    assert_eq!(
        row.nik_hash.as_deref(),
        Some(app.state.failures.nik_hash("3578015708950001").as_str())
    );
    assert_eq!(row.client_ip.as_deref(), Some("127.0.0.0"));
    assert_eq!(row.path, "/register");
    assert_eq!(row.user_agent, None);
    // Every text column is checked above: no typed value (phone, date,
    // full NIK, password) is kept anywhere in the row.
    assert_eq!(failure_count(&app), 1);
}

/// A NIK typed into the registration's email field, a password typed into
/// the sign-in's: neither is stored, only its kind and length.
async fn what_is_no_email_address_is_kept_only_as_its_shape(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut input = Registration {
        email: "3578 0157 0895 0001".into(),
        ..Default::default()
    };
    let html = app.register_stuck(&mut input).await.text().await.unwrap();
    let row = failure_row(&app, &code_on(&html, "DFT"));
    assert_eq!(row.email, None);
    assert_eq!(row.email_shape.as_deref(), Some("digits:16"));

    let html = app
        .login_stuck("kopi tubruk pagi hari", "kopi tubruk pagi hari")
        .await
        .text()
        .await
        .unwrap();
    let row = failure_row(&app, &code_on(&html, "LGN"));
    assert_eq!(row.email, None);
    assert_eq!(row.email_shape.as_deref(), Some("text:21"));
    let mut conn = app.state.pool.get().unwrap();
    let stored: Vec<(Option<String>, String, Option<String>)> = failures::table
        .select((failures::email, failures::fields, failures::user_agent))
        .load(&mut *conn)
        .unwrap();
    assert!(!format!("{stored:?}").contains("kopi"), "{stored:?}");
    assert!(!format!("{stored:?}").contains("3578"), "{stored:?}");
}

async fn rejected_upload_is_its_own_reason(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut input = Registration {
        photo: Some(("ktp.jpg".into(), b"a text file, not a photo".to_vec())),
        ..Default::default()
    };
    let html = app.register(&mut input).await.text().await.unwrap();
    let row = failure_row(&app, &code_on(&html, "DFT"));
    assert_eq!(
        (row.reason.as_str(), row.fields.as_str()),
        ("upload_rejected", "ktp_photo")
    );
}

async fn taken_email_and_nik_pages_guide_and_are_logged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;

    let mut same_email = Registration {
        email: "Siti.Aminah@example.co.id".into(),
        ..Registration::budi()
    };
    let response = app.register(&mut same_email).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    let code = code_on(&html, "REG");
    assert_guidance(&html);
    // Sign in, reset, never registered: in that order.
    let sign_in = html
        .find(r#"href="/login">Masuk ke akun Anda"#)
        .expect("sign in");
    let reset = html.find(r#"href="/password/forgot""#).expect("reset");
    let never = html
        .find("Saya tidak pernah mendaftar dengan alamat email ini")
        .expect("never");
    assert!(sign_in < reset && reset < never);
    assert_eq!(failure_row(&app, &code).reason, "email_taken");

    let mut same_nik = Registration {
        email: "orang.lain@example.com".into(),
        ..Default::default()
    };
    let response = app.register(&mut same_nik).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("NIK Anda mungkin telah digunakan orang lain"),
        "misuse warning"
    );
    let row = failure_row(&app, &code_on(&html, "REG"));
    assert_eq!(row.reason, "nik_taken");
    assert_eq!(row.nik_masked.as_deref(), Some("3578********0001"));
}

async fn stale_and_old_version_forms_keep_values_and_are_logged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A form rendered by an older portal: an unsigned submission id.
    let mut input = Registration::default();
    let (csrf, _) = app.open_register_form().await;
    input.csrf_token = csrf;
    input.submission_id = uuid::Uuid::new_v4().to_string();
    let response = app.post_register(&input).await;
    assert_eq!(response.status(), 403);
    let html = response.text().await.unwrap();
    assert!(html.contains("Halaman ini sudah terlalu lama terbuka"));
    assert!(html.contains(r#"href="/help/connection""#));
    assert!(html.contains(r#"value="Siti Aminah""#));
    let row = failure_row(&app, &code_on(&html, "STL"));
    assert_eq!(row.reason, "stale_form");
    // The returned form goes through on the next submit.
    // (The photo is sent again: nothing is stored for a stale post.)
    input.submission_id = attr_after(&html, r#"name="submission_id""#, "value").unwrap();
    assert_eq!(app.post_register(&input).await.status(), 303);
}

async fn already_registered_answers_are_rate_limited(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.rate_limit_per_email_hour = 2).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    for _ in 0..2 {
        let response = app.register(&mut Registration::default()).await;
        assert_eq!(response.status(), 409);
    }
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Terlalu banyak percobaan"));
    assert!(
        !html.contains("sudah terdaftar"),
        "the limit answer reveals nothing"
    );
    let row = failure_row(&app, &code_on(&html, "LIM"));
    assert_eq!(row.reason, "rate_limited");
    assert_eq!(row.email.as_deref(), Some("siti.aminah@example.co.id"));
    // Just before the hour is up the limit still holds; after it, the
    // answer comes again.
    app.state.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(
        app.register(&mut Registration::default()).await.status(),
        429
    );
    app.state.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(
        app.register(&mut Registration::default()).await.status(),
        409
    );
}

async fn oversized_upload_is_a_413_page_and_logged(backend: Backend) {
    // A photo beyond what is read at all (twice the upload limit).
    let Some(app) = TestApp::spawn_with(backend, |s| s.ktp_upload_max_bytes = 1024 * 1024).await
    else {
        return;
    };
    let mut input = Registration {
        photo: Some((
            "besar.jpg".into(),
            crate::helpers::fake_jpeg(4 * 1024 * 1024),
        )),
        ..Default::default()
    };
    let response = app.register(&mut input).await;
    assert_eq!(response.status(), 413);
    let html = response.text().await.unwrap();
    assert_guidance(&html);
    let row = failure_row(&app, &code_on(&html, "ERR"));
    assert_eq!(
        (row.reason.as_str(), row.path.as_str()),
        ("upload_rejected", "/register")
    );
}

async fn link_and_sign_in_failures_are_logged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, html) = app.get_html("/verify?token=abc").await;
    assert_eq!(status, 404);
    assert_eq!(
        failure_row(&app, &code_on(&html, "VER")).reason,
        "link_unknown"
    );

    let before = failure_count(&app);
    let response = app
        .login_stuck("tidak.ada@example.com", "salah sekali")
        .await;
    let html = response.text().await.unwrap();
    assert_eq!(
        failure_count(&app),
        before + 1,
        "only the third try is logged"
    );
    let row = failure_row(&app, &code_on(&html, "LGN"));
    assert_eq!(row.reason, "sign_in_failed");
    assert_eq!(row.email.as_deref(), Some("tidak.ada@example.com"));
}

/// Enumeration-safe mode: registering a taken address looks exactly like a
/// new registration; the owner gets the guidance by mail.
async fn enumeration_safe_mode_mails_the_owner(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.enumeration_safe = true).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;

    let new = app.register(&mut Registration::budi()).await;
    let mut taken = Registration {
        email: "siti.aminah@example.co.id".into(),
        ..Registration::budi()
    };
    taken.nik = "3201011708900011".into();
    let again = app.register(&mut taken).await;
    assert_eq!(new.status(), again.status());
    assert_eq!(new.headers()["location"], again.headers()["location"]);
    let (_, page) = app.get_html("/register/check-email").await;
    assert!(page.contains("siti.aminah@example.co.id"));
    assert!(!page.contains("sudah terdaftar"));

    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    let guidance = &mails[1];
    assert_eq!(
        guidance.subject,
        "Alamat email Anda sudah terdaftar di e-Meterai"
    );
    assert!(guidance.text.contains("http://portal.test/login"));
    assert!(guidance.text.contains("http://portal.test/password/forgot"));
    let code = code_on(&guidance.text, "REG");
    assert_eq!(failure_row(&app, &code).reason, "email_taken");
}

async fn old_failures_are_purged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.get_html("/verify?token=old").await;
    // Failures with an address: sealed under the key of their day.
    let client = emeterai::services::failures::Client {
        ip: None,
        user_agent: None,
        path: "/login".into(),
    };
    let with_address =
        |address: &str| emeterai::services::failures::Failure::new("sign_in_failed").email(address);
    let old_day = app.state.clock.now().date();
    emeterai::services::failures::record(
        &app.state.services(),
        &client,
        "SIN",
        with_address("lama@example.com"),
    )
    .await;
    // 91 days later (retention is 90), another failure.
    app.state.clock.advance(chrono::Duration::days(91));
    let (_, html) = app.get_html("/verify?token=new").await;
    let recent = code_on(&html, "VER");
    let kept = emeterai::services::failures::record(
        &app.state.services(),
        &client,
        "SIN",
        with_address("baru@example.com"),
    )
    .await;
    // (The worker's own purge may have taken the old row first.)
    let purged =
        emeterai::services::retention::purge_failures(&app.state.services(), app.state.clock.now())
            .await
            .unwrap();
    assert!(purged <= 2, "{purged}");
    assert_eq!(failure_count(&app), 2, "only the recent failures are left");
    failure_row(&app, &recent);
    // The old day's key is shredded with its last row; the new day's stays
    // and opens its row.
    let key_ids: Vec<String> = {
        use diesel::prelude::*;
        let mut conn = app.state.pool.get().unwrap();
        emeterai::schema::data_keys::table
            .select(emeterai::schema::data_keys::id)
            .load(&mut conn)
            .unwrap()
    };
    assert!(
        !key_ids.contains(&format!("failures-{old_day}")),
        "{key_ids:?}"
    );
    assert_eq!(
        failure_row(&app, &kept).email.as_deref(),
        Some("baru@example.com")
    );
}

async fn password_reset_end_to_end(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    // Another device is signed in.
    let other = app.new_browser();
    let page = other
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    let signed = other
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.aminah@example.co.id"),
            ("password", &siti.password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(
        other
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The same answer for a known and an unknown address.
    let mut answers = Vec::new();
    for email in ["siti.aminah@example.co.id", "tidak.ada@example.com"] {
        let csrf = app.csrf_from("/password/forgot").await;
        let response = app
            .client
            .post(app.url("/password/forgot"))
            .form(&[("csrf_token", csrf.as_str()), ("email", email)])
            .send()
            .await
            .unwrap();
        answers.push((response.status(), response.headers()["location"].clone()));
    }
    assert_eq!(answers[0], answers[1]);
    let (_, sent) = app.get_html("/password/forgot?sent=1").await;
    assert!(sent.contains("ti***@example.com"), "{sent}");

    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    let reset = &mails[1];
    assert_eq!(
        reset.subject,
        "Buat kata sandi baru untuk akun e-Meterai Anda"
    );
    let start = reset.text.find("/password/reset?token=").unwrap();
    let link = reset.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        app.mail
            .accepted()
            .iter()
            .all(|m| m.to[0] != "tidak.ada@example.com")
    );

    let (status, form) = app.get_html(&link).await;
    assert_eq!(status, 200);
    let csrf = attr_after(&form, r#"name="csrf_token""#, "value").unwrap();
    let token = attr_after(&form, r#"name="token""#, "value").unwrap();
    // A common password is refused with the form back.
    let response = app
        .client
        .post(app.url("/password/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", &token),
            ("password", "password"),
            ("password_confirm", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("terlalu umum"));
    // A refused new password is the citizen's to fix: no row, no code.
    assert!(reference_code(&html).is_none(), "{html}");
    let response = app
        .client
        .post(app.url("/password/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", &token),
            ("password", "teh manis sore hari"),
            ("password_confirm", "teh manis sore hari"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?reset=1");

    // The other device is signed out; the old password no longer works.
    let response = other.get(app.url("/account")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.login("siti.aminah@example.co.id", &siti.password)
            .await
            .status(),
        422
    );
    assert_eq!(
        app.login("siti.aminah@example.co.id", "teh manis sore hari")
            .await
            .status(),
        303
    );

    // The link works once.
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 410);
    assert_eq!(
        failure_row(&app, &code_on(&html, "PWD")).reason,
        "reset_link_invalid"
    );
}

async fn expired_reset_link_is_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    let csrf = app.csrf_from("/password/forgot").await;
    let response = app
        .client
        .post(app.url("/password/forgot"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.aminah@example.co.id"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 303, "{}", response.text().await.unwrap());
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    let start = mails[1].text.find("/password/reset?token=").unwrap();
    let link = mails[1].text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    {
        use emeterai::schema::account_tokens;
        let mut conn = app.state.pool.get().unwrap();
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
        diesel::update(account_tokens::table.filter(account_tokens::purpose.eq("reset")))
            .set(account_tokens::expires_at.eq(past))
            .execute(&mut *conn)
            .unwrap();
    }
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 410);
    assert!(html.contains("Tautan untuk membuat kata sandi baru tidak berlaku"));
}

async fn help_pages_give_the_steps_in_order(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, html) = app.get_html("/help").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"href="/help/email-registered""#));
    assert!(html.contains(r#"href="/help/connection""#));
    assert_guidance(&html);

    let (status, html) = app.get_html("/help/connection").await;
    assert_eq!(status, 200);
    let steps = [
        "coba lagi",
        "Ctrl</kbd> + <kbd>F5",
        "hapus data situs",
        "Incognito",
        "browser lain",
        "Hubungi Layanan Bantuan (Contact Center)",
    ];
    let positions: Vec<usize> = steps
        .iter()
        .map(|s| html.find(s).unwrap_or_else(|| panic!("{s} missing")))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "steps out of order"
    );

    let (_, html) = app.get_html("/help/email-registered?lang=en").await;
    assert!(html.contains("an account with those details is already active"));
    assert!(html.contains(r#"href="/login""#));
    assert!(html.contains(r#"href="/password/forgot""#));
    assert_guidance(&html);

    // Contact channels come from settings.
    let Some(custom) =
        TestApp::spawn_with(backend, |s| s.contact_phone = "021 1500 999".into()).await
    else {
        return;
    };
    let (_, html) = custom.get_html("/help/connection").await;
    assert!(html.contains("021 1500 999") && html.contains(r#"href="tel:0211500999""#));
}

on_both_backends!(
    validation_failure_is_logged_without_values,
    what_is_no_email_address_is_kept_only_as_its_shape,
    rejected_upload_is_its_own_reason,
    taken_email_and_nik_pages_guide_and_are_logged,
    stale_and_old_version_forms_keep_values_and_are_logged,
    already_registered_answers_are_rate_limited,
    oversized_upload_is_a_413_page_and_logged,
    link_and_sign_in_failures_are_logged,
    enumeration_safe_mode_mails_the_owner,
    old_failures_are_purged,
    password_reset_end_to_end,
    expired_reset_link_is_refused,
    help_pages_give_the_steps_in_order,
);

fn count_registrations(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    emeterai::schema::registrations::table
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

/// SQLite: another process holds the write lock (a stuck backup, a full
/// disk): the citizen gets the 503 page, and the portal recovers.
#[actix_web::test]
async fn sqlite_locked_gives_503_and_recovers() {
    use diesel::connection::SimpleConnection;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let mut blocker = diesel::SqliteConnection::establish(&app.db.url).unwrap();
    blocker.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Layanan sedang sibuk"));
    assert!(html.contains("belum tersimpan"));
    let code = code_on(&html, "ERR");
    blocker.batch_execute("ROLLBACK").unwrap();

    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303, "recovered");
    assert_eq!(count_registrations(&app), 1);
    // The failure that could not be written then is written now.
    for _ in 0..100 {
        let mut conn = app.state.pool.get().unwrap();
        let found: Option<FailureRow> = failures::table
            .find(&code)
            .first(&mut *conn)
            .optional()
            .unwrap();
        if let Some(row) = found {
            assert_eq!(row.reason, "service_unavailable");
            return;
        }
        drop(conn);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("buffered failure {code} never written");
}

/// PostgreSQL stops mid-test (the proxy in front of it goes away): 503
/// page; when it returns, the portal serves again without a restart.
#[actix_web::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run it on PostgreSQL"
)]
async fn postgres_gone_gives_503_and_recovers() {
    use crate::db_proxy::DbProxy;
    let Some(db) = crate::helpers::TestDb::new(Backend::Postgres) else {
        return;
    };
    let upstream = crate::helpers::host_port(&db.url);
    let mut proxy = DbProxy::start(upstream).await;
    let proxied = crate::helpers::with_host_port(&db.url, &proxy.addr.to_string());
    let Some(app) = TestApp::spawn_on(db, |s| {
        s.database_url = proxied;
        s.db_timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 200);
    proxy.stop();
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 503);
    let html = response.text().await.unwrap();
    assert!(html.contains("Layanan sedang sibuk"));
    let code = code_on(&html, "ERR");
    assert_eq!(app.get("/readyz").await.status(), 503);

    let _proxy = proxy.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "readyz never recovered");
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303);
    for _ in 0..100 {
        let found: Option<FailureRow> = {
            let mut conn = app.state.pool.get().unwrap();
            failures::table
                .find(&code)
                .first(&mut *conn)
                .optional()
                .unwrap()
        };
        if let Some(row) = found {
            assert_eq!(row.reason, "service_unavailable");
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("buffered failure {code} never written");
}
