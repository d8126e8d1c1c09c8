//! Details first, password after the link: what carries over from the old
//! flow, and the hashing pool's admission (503 with `Refresh`, at once).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use emeterai::db::DbConn;
use emeterai::schema::{accounts, registrations};

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::mail_stub::verification_path;
use crate::on_both_backends;

/// A registration made with the old form (password at sign-up), waiting
/// for its link when the portal is upgraded: the link verifies it with one
/// button press, and the password chosen back then signs in.
async fn old_form_registrations_verify_with_one_press(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (token, token_hash) = emeterai::domain::link_token::new_link_token();
    let old_hash = bcrypt::hash("kata sandi lama saya", 4).unwrap();
    {
        let mut conn = app.state.pool.get().unwrap();
        // Back to the schema before the details-first flow, with an
        // old-style pending account and its link, then forward again.
        loop {
            let reverted = match &mut *conn {
                DbConn::Sqlite(c) => c
                    .revert_last_migration(emeterai::db::SQLITE_MIGRATIONS)
                    .map(|v| v.to_string()),
                DbConn::Postgres(c) => c
                    .revert_last_migration(emeterai::db::POSTGRES_MIGRATIONS)
                    .map(|v| v.to_string()),
            };
            let reverted = reverted.unwrap();
            assert!(reverted.as_str() >= "20261125000005", "{reverted}");
            if reverted.contains("20261125000005") {
                break;
            }
        }
        // Made an hour ago, by the clock the portal reads.
        let at = (app.state.clock.now() - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
        let expires =
            (app.state.clock.now() + chrono::Duration::days(2)).format("%Y-%m-%d %H:%M:%S");
        conn.batch_execute(&format!(
            "INSERT INTO ktp_uploads (id, file_name, content_type, size_bytes, data, created_at)
               VALUES ('u1', 'ktp.jpg', 'image/jpeg', 0, {empty}, '{at}');
             INSERT INTO accounts (id, email, nik, full_name, birth_date, phone, password_hash,
               ktp_upload_id, lang, created_at)
               VALUES ('a1', 'lama@example.com', '3201011708900003', 'Budi Lama', '1990-08-17',
               '+6281234567890', '{old_hash}', 'u1', 'id', '{at}');
             INSERT INTO account_tokens (token_hash, account_id, purpose, created_at, expires_at)
               VALUES ('{token_hash}', 'a1', 'verify', '{at}', '{expires}');",
            empty = match backend {
                Backend::Sqlite => "X''",
                Backend::Postgres => "''::bytea",
            }
        ))
        .unwrap();
    }
    emeterai::db::migrate(&app.state.pool).unwrap();
    {
        let mut conn = app.state.pool.get().unwrap();
        let legacy: Option<String> = registrations::table
            .select(registrations::legacy_password_hash)
            .first(&mut *conn)
            .unwrap();
        assert_eq!(legacy.as_deref(), Some(old_hash.as_str()));
        let accounts: i64 = accounts::table.count().get_result(&mut *conn).unwrap();
        assert_eq!(accounts, 0, "the pending account became a registration");
    }
    // Signing in before the link says what to do.
    let response = app.login("lama@example.com", "kata sandi lama saya").await;
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Email Anda belum diverifikasi")
    );

    let link = format!("/verify?token={token}");
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Verifikasi email saya"), "{html}");
    assert!(
        !html.contains(r#"type="password""#),
        "no new password asked"
    );
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let response = app
        .client
        .post(app.url("/verify"))
        .form(&[("csrf_token", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let browser = app.new_browser();
    let page = browser.get(app.url("/login")).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let response = browser
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "lama@example.com"),
            ("password", "kata sandi lama saya"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the old password signs in");
}

/// When more citizens choose a password at once than the pool admits, the
/// rest are told at once (503, `Refresh` back to their link, a try-again
/// button), nothing is lost, and the link still works afterwards.
async fn a_full_hashing_queue_answers_503_with_refresh(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.bcrypt_cost = 10;
        s.hash_concurrency = Some(1);
        s.hash_queue = Some(1);
    })
    .await
    else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let link = verification_path(&mail);
    let (_, html) = app.get_html(&link).await;
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let token = attr_after(&html, r#"name="token""#, "value").unwrap();
    let posts = (0..8).map(|_| {
        app.client
            .post(app.url("/verify"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("token", token.as_str()),
                ("password", "kopi tubruk pagi hari"),
                ("password_confirm", "kopi tubruk pagi hari"),
            ])
            .send()
    });
    let responses = futures_util::future::join_all(posts).await;
    let mut busy = 0;
    for response in responses {
        let response = response.unwrap();
        if response.status() == 503 {
            busy += 1;
            let refresh = response.headers()["refresh"].to_str().unwrap().to_string();
            assert_eq!(refresh, format!("5; url={link}"));
            assert!(response.headers().contains_key("retry-after"));
            let html = response.text().await.unwrap();
            assert!(html.contains("Sistem sedang sibuk"), "{html}");
            assert!(html.contains("Tidak ada data yang hilang"));
            assert!(html.contains("Coba lagi sekarang"));
            assert!(html.contains("1500 159"));
            assert!(!html.contains("http-equiv"), "no meta refresh");
        }
    }
    assert!(busy >= 5, "{busy} of 8 refused");
    // One of the admitted ones made the account; the link says so.
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Email sudah diverifikasi"), "{html}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("emeterai_hash_rejected_total{class=\"new_password\"}"),
        "{metrics}"
    );
}

/// 30 resend requests at the same moment, half through a second instance
/// on the same database: one new link per cooldown, however they race.
async fn resend_cooldown_holds_under_parallel_requests_on_two_instances(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 2).await else {
        return;
    };
    let Some(second) = TestApp::spawn_on(app.db.share(), |s| s.resend_cooldown_secs = 2).await
    else {
        return;
    };
    app.register(&mut Registration::default()).await;
    app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2100)).await;
    let csrf_one = app.csrf_from("/register/check-email").await;
    let csrf_two = second.csrf_from("/register/check-email").await;
    let posts = (0..30).map(|i| {
        let (instance, csrf) = if i % 2 == 0 {
            (&app, &csrf_one)
        } else {
            (&second, &csrf_two)
        };
        instance
            .client
            .post(instance.url("/verify/resend"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", "siti.aminah@example.co.id"),
            ])
            .send()
    });
    for response in futures_util::future::join_all(posts).await {
        assert_eq!(response.unwrap().status(), 303);
    }
    let mut conn = app.state.pool.get().unwrap();
    let links: i64 = emeterai::schema::registration_tokens::table
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(links, 2, "the first link and exactly one more");
    let mails: i64 = emeterai::schema::mail_outbox::table
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(mails, 2);
}

on_both_backends!(
    resend_cooldown_holds_under_parallel_requests_on_two_instances,
    old_form_registrations_verify_with_one_press,
    a_full_hashing_queue_answers_503_with_refresh,
);
