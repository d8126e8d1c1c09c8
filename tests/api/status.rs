//! The public status page and the incident notice staff post on it.

use crate::helpers::{Backend, TestApp, csrf_of, html_of};
use crate::on_both_backends;
use crate::staff::{STAFF_EMAIL, signed_in_staff};

async fn the_status_page_tells_each_part_in_both_languages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    emeterai::worker::refresh_status(&app.state).await;
    let (status, html) = app.get_html("/status").await;
    assert_eq!(status, 200);
    for text in [
        "Status layanan",
        "Pendaftaran",
        "Pengiriman email",
        "Masuk ke akun",
    ] {
        assert!(html.contains(text), "{text}: {html}");
    }
    assert_eq!(html.matches("level-normal").count(), 3, "{html}");
    assert!(html.contains("Tidak ada gangguan yang diumumkan"));
    let (_, english) = app.get_html("/status?lang=en").await;
    assert!(english.contains("Mail delivery") && english.contains("Normal"));
    // Every citizen page links it (the footer), the help pages included.
    let (_, help) = app.get_html("/help").await;
    assert!(help.contains(r#"href="/status""#));

    // The database goes: the next reading says so.
    app.db.destroy();
    emeterai::worker::refresh_status(&app.state).await;
    let (_, html) = app.get_html("/status?lang=id").await;
    assert_eq!(html.matches("level-down").count(), 3, "{html}");
    assert!(
        html.contains("Data yang sudah Anda kirim tetap tersimpan"),
        "{html}"
    );
}

async fn a_notice_staff_post_is_a_banner_on_every_citizen_page_until_ended(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = signed_in_staff(&app).await;
    let csrf = csrf_of(&staff, app.url("/staff/status")).await;
    let post_notice = async |client: &reqwest::Client, text_id: &str, text_en: &str| {
        client
            .post(app.url("/staff/status/post"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("text_id", text_id),
                ("text_en", text_en),
            ])
            .send()
            .await
            .unwrap()
    };

    // Both texts are needed.
    let refused = post_notice(&staff, "Gangguan", "").await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("Isi kedua teks"), "{html}");
    assert!(html.contains("Gangguan"), "what was typed stays");

    let posted = post_notice(
        &staff,
        "Pengiriman email terlambat <30 menit>.",
        "Mail is up to 30 minutes late.",
    )
    .await;
    assert_eq!(posted.status(), 303);
    for path in ["/", "/register", "/help", "/status", "/login"] {
        let (_, html) = app.get_html(path).await;
        assert!(
            html.contains("Pengiriman email terlambat &#60;30 menit&#62;."),
            "{path}: {html}"
        );
    }
    let (_, english) = app.get_html("/register?lang=en").await;
    assert!(english.contains("Mail is up to 30 minutes late."));
    // A reading of the database keeps it (another instance sees it so).
    emeterai::worker::refresh_status(&app.state).await;
    let (_, html) = app.get_html("/?lang=id").await;
    assert!(html.contains("Pengiriman email terlambat"));

    // A citizen cannot post one.
    let response = post_notice(&app.new_browser(), "x", "y").await;
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/staff/login")
    );

    let ended = staff
        .post(app.url("/staff/status/end"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 303);
    let (_, html) = app.get_html("/?lang=id").await;
    assert!(!html.contains("Pengiriman email terlambat"));
    emeterai::worker::refresh_status(&app.state).await;
    let (_, html) = app.get_html("/status").await;
    assert!(html.contains("Tidak ada gangguan yang diumumkan"));

    // Both steps are in the audit, with who did them.
    let audit = html_of(&staff, app.url("/staff/audit")).await;
    assert!(
        audit.contains("Menampilkan pemberitahuan di halaman status")
            && audit.contains("Mengakhiri pemberitahuan di halaman status"),
        "{audit}"
    );
    assert!(audit.contains(STAFF_EMAIL));
}

on_both_backends!(
    the_status_page_tells_each_part_in_both_languages,
    a_notice_staff_post_is_a_banner_on_every_citizen_page_until_ended,
);
