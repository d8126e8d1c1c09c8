use crate::helpers::{Backend, TestApp, attr_after};
use crate::on_both_backends;

async fn start_page_speaks_indonesian_by_default(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<html lang="id">"#));
    assert!(html.contains("<h1>Buat akun e\u{2011}Meterai</h1>"));
    assert!(html.contains("NIK Anda (16 digit, tertera pada KTP)"));
    assert!(html.contains(r#"href="/register""#));
    assert!(html.contains(r#"href="/help""#));
    // Contact channels in the footer.
    assert!(html.contains(r#"href="tel:1500159""#));
    assert!(html.contains("https://wa.me/628119590159"));
}

async fn english_is_chosen_with_lang_and_remembered(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.get("/?lang=en").await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("lang=en"), "{cookie}");
    assert!(cookie.contains("HttpOnly"));
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("<h1>Create an e\u{2011}Meterai account</h1>"));
    // The switch link leads back to Indonesian.
    assert_eq!(
        attr_after(&html, "lang-switch", "href").as_deref(),
        Some("/?lang=id")
    );

    // Without ?lang the cookie keeps English.
    let (_, html) = app.get_html("/").await;
    assert!(html.contains("<h1>Create an e\u{2011}Meterai account</h1>"));

    let (_, html) = app.get_html("/?lang=id").await;
    assert!(html.contains("<h1>Buat akun e\u{2011}Meterai</h1>"));
    let (_, html) = app.get_html("/").await;
    assert!(html.contains(r#"<html lang="id">"#));
}

async fn every_response_carries_security_headers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in ["/", "/does-not-exist", "/healthz"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-request-id"].len(), 32);
    }
}

async fn pages_are_compressed_for_slow_connections(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app
        .client
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "Accept-Encoding");
    let compressed = response.bytes().await.unwrap();
    // gzip magic number: the body really is compressed.
    assert_eq!(&compressed[..2], &[0x1f, 0x8b]);

    // A client that does not take gzip gets the page as it is.
    let plain = app.client.get(app.url("/")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let html = plain.text().await.unwrap();
    assert!(html.contains("<h1>"));
    // The stylesheet, compressed once at start-up, likewise.
    let css = attr_after(&html, r#"rel="stylesheet""#, "href").expect("stylesheet");
    let zipped = app
        .client
        .get(app.url(&css))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(&zipped.bytes().await.unwrap()[..2], &[0x1f, 0x8b]);
    let raw = app.client.get(app.url(&css)).send().await.unwrap();
    assert!(raw.headers().get("content-encoding").is_none());
    assert!(raw.text().await.unwrap().contains("{"));

    // The busiest pages are spliced from parts compressed once: each
    // visitor still gets a whole, valid page with tokens of their own.
    for path in ["/", "/register", "/register?lang=en", "/login"] {
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let visitor = app.new_browser();
            let response = visitor
                .get(app.url(path))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(response.headers()["content-encoding"], "gzip", "{path}");
            let mut html = String::new();
            use std::io::Read;
            flate2::read::GzDecoder::new(&response.bytes().await.unwrap()[..])
                .read_to_string(&mut html)
                .unwrap_or_else(|e| panic!("{path}: not valid gzip: {e}"));
            assert!(
                html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"),
                "{path}"
            );
            assert!(!html.contains('\u{1}'), "{path}: a placeholder left");
            if path != "/" {
                let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
                assert_eq!(csrf.len(), 64, "{path}");
                tokens.push(csrf);
            }
        }
        if path != "/" {
            assert_ne!(tokens[0], tokens[1], "{path}: visitors share a token");
        }
    }
}

async fn head_requests_are_answered(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
}

/// The form links the terms, the privacy notice and the photo help; each
/// page reads in both languages, and the privacy notice states the periods
/// the running settings keep data for.
async fn terms_privacy_and_photo_help_are_linked_from_the_form(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.unverified_ttl_hours = 72;
        s.failure_retention_days = 30;
    })
    .await
    else {
        return;
    };
    let (_, form) = app.get_html("/register").await;
    for path in ["/terms", "/privacy", "/help/ktp-photo"] {
        assert!(
            form.contains(&format!(r#"href="{path}""#)),
            "{path} not linked"
        );
    }
    for (path, id, en) in [
        (
            "/terms",
            "<h1>Syarat dan ketentuan</h1>",
            "<h1>Terms and conditions</h1>",
        ),
        (
            "/privacy",
            "<h1>Pemberitahuan privasi</h1>",
            "<h1>Privacy notice</h1>",
        ),
        (
            "/help/ktp-photo",
            "<h1>Cara memotret KTP</h1>",
            "<h1>How to photograph your KTP</h1>",
        ),
    ] {
        let (status, html) = app.get_html(&format!("{path}?lang=id")).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(id), "{html}");
        // Reached from the footer too, each leads on to the form.
        assert!(
            html.contains("<a href=\"/register\">Buat akun e\u{2011}Meterai</a>"),
            "{path}: {html}"
        );
        let (status, html) = app.get_html(&format!("{path}?lang=en")).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(en), "{html}");
    }
    let (_, privacy) = app.get_html("/privacy?lang=id").await;
    assert!(privacy.contains("setelah 3 hari"), "{privacy}");
    assert!(privacy.contains("setelah 30 hari"), "{privacy}");
}

on_both_backends!(
    terms_privacy_and_photo_help_are_linked_from_the_form,
    start_page_speaks_indonesian_by_default,
    english_is_chosen_with_lang_and_remembered,
    every_response_carries_security_headers,
    pages_are_compressed_for_slow_connections,
    head_requests_are_answered,
);
