use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpResponse, test, web};
use emeterai::errors::{AppError, error_page};

use crate::helpers::{Backend, TestApp, reference_code};
use crate::on_both_backends;

fn assert_error_page(html: &str, title: &str) {
    // The title's prefix in the page's own language.
    assert!(
        html.contains(&format!("<title>Kesalahan: {title}"))
            || html.contains(&format!("<title>Error: {title}"))
                && html.contains(r#"<html lang="en">"#),
        "{html}"
    );
    assert!(html.contains(&format!("<h1>{title}</h1>")), "{html}");
    assert!(
        reference_code(html).is_some(),
        "no reference code in {html}"
    );
    assert!(html.contains("1500 159"), "no contact channel in {html}");
    // The status for support staff, named in the page's words, not a bare
    // "HTTP 404" line.
    assert!(!html.contains(">HTTP "), "{html}");
    assert!(
        html.contains("Kode kesalahan untuk petugas:")
            || html.contains("Error code for support staff:"),
        "{html}"
    );
}

async fn unknown_path_is_a_404_page_with_reference(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.get("/tidak/ada").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    assert_error_page(&html, "Halaman tidak ditemukan");
    assert!(html.contains("Kode referensi"));

    let (status, html) = app.get_html("/tidak/ada?lang=en").await;
    assert_eq!(status, 404);
    assert_error_page(&html, "Page not found");
    // Each failure gets its own code.
    let (_, again) = app.get_html("/tidak/ada").await;
    assert_ne!(reference_code(&html), reference_code(&again));
}

async fn wrong_method_is_a_405_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_error_page(
        &response.text().await.unwrap(),
        "Halaman tidak dapat dibuka dengan cara ini",
    );
}

async fn oversized_body_is_a_413_page(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.max_body_bytes = 4096).await else {
        return;
    };
    let response = app
        .client
        .post(app.url("/"))
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_error_page(
        &response.text().await.unwrap(),
        "Data yang dikirim terlalu besar",
    );
}

async fn fail(path: web::Path<u16>) -> Result<HttpResponse, AppError> {
    Err(match path.into_inner() {
        400 => AppError::BadRequest("test"),
        403 => AppError::Forbidden,
        429 => AppError::RateLimited {
            reference: emeterai::reference::new_reference("LIM"),
            retry_after_secs: 3600,
        },
        503 => AppError::unavailable("database connection refused at 10.0.0.5"),
        _ => AppError::internal("Failed to connect to account-service: Connection refused"),
    })
}

/// Every status the application raises becomes a page in the citizen's
/// language, with a reference code and no internal error text.
async fn application_errors_render_pages_without_internals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let service = test::init_service(
        App::new()
            .app_data(app.state.clone())
            .route("/fail/{status}", web::get().to(fail))
            .wrap(ErrorHandlers::new().default_handler(error_page)),
    )
    .await;
    let cases = [
        (400, "Permintaan tidak dapat diproses"),
        (403, "Halaman tidak dapat dibuka"),
        (429, "Terlalu banyak percobaan"),
        (500, "Terjadi kesalahan pada sistem kami"),
        (503, "Layanan sedang sibuk"),
    ];
    for (status, title) in cases {
        let request = test::TestRequest::get()
            .uri(&format!("/fail/{status}"))
            .to_request();
        let response = test::call_service(&service, request).await;
        assert_eq!(response.status().as_u16(), status);
        if status == 503 {
            assert_eq!(response.headers().get("retry-after").unwrap(), "30");
        }
        let html = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
        assert_error_page(&html, title);
        assert!(!html.contains("Connection refused"), "{html}");
        assert!(!html.contains("10.0.0.5"), "{html}");
    }
    let request = test::TestRequest::get()
        .uri("/fail/500?lang=en")
        .to_request();
    let html = test::read_body(test::call_service(&service, request).await).await;
    assert_error_page(
        std::str::from_utf8(&html).unwrap(),
        "Something went wrong on our side",
    );
}

on_both_backends!(
    unknown_path_is_a_404_page_with_reference,
    wrong_method_is_a_405_page,
    oversized_body_is_a_413_page,
    application_errors_render_pages_without_internals,
);
