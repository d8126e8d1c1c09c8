use crate::helpers::{Backend, TestApp, attr_after};
use crate::on_both_backends;

async fn stylesheet_has_hashed_immutable_url(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, html) = app.get_html("/").await;
    let href = attr_after(&html, r#"rel="stylesheet""#, "href").expect("stylesheet link");
    let file = href.strip_prefix("/static/css/site.").expect(&href);
    let hash = file.strip_suffix(".css").expect(&href);
    assert_eq!(hash.len(), 8);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));

    let response = app.get(&href).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let current = response.text().await.unwrap();
    assert!(current.contains(".container"));

    // A page cached before a deploy asks for an older hash: it still gets
    // the current file, and is told to check again next time.
    let stale = app.get("/static/css/site.0badc0de.css").await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["cache-control"], "public, no-cache");
    assert_eq!(stale.text().await.unwrap(), current);

    // The plain name works too.
    assert_eq!(app.get("/static/css/site.css").await.status(), 200);
}

async fn unchanged_asset_answers_not_modified(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app.get("/static/css/site.css").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .client
        .get(app.url("/static/css/site.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

async fn unknown_asset_is_a_404_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, html) = app.get_html("/static/css/nothing.12345678.css").await;
    assert_eq!(status, 404);
    assert!(html.contains("Halaman tidak ditemukan"));
    let (status, _) = app.get_html("/static/../Cargo.toml").await;
    assert_eq!(status, 404);
}

on_both_backends!(
    stylesheet_has_hashed_immutable_url,
    unchanged_asset_answers_not_modified,
    unknown_asset_is_a_404_page,
);
