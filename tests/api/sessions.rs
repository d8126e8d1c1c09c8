//! Sessions are records on the server: a cookie copied before sign-out
//! opens nothing afterwards (citizens and staff), "sign out everywhere"
//! ends the other devices' sessions, and disabling staff ends theirs.

use std::sync::Arc;

use reqwest::cookie::CookieStore;

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::on_both_backends;

/// A browser whose cookies the test can read (to replay them elsewhere).
fn browser() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

/// What an attacker who copied the cookies would send.
fn copied_cookies(app: &TestApp, jar: &reqwest::cookie::Jar, path: &str) -> String {
    let url = app.url(path).parse().unwrap();
    jar.cookies(&url)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn status_with_cookie(app: &TestApp, path: &str, cookie: &str) -> u16 {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn citizen_sign_in(app: &TestApp, client: &reqwest::Client, password: &str) {
    let page = client.get(app.url("/login")).send().await.unwrap();
    let csrf = attr_after(&page.text().await.unwrap(), r#"name="csrf_token""#, "value").unwrap();
    let response = client
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.aminah@example.co.id"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

async fn post_with_csrf(app: &TestApp, client: &reqwest::Client, page: &str, action: &str) {
    let html = client
        .get(app.url(page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let response = client
        .post(app.url(action))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

async fn a_citizen_cookie_replayed_after_sign_out_is_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    let (phone, phone_jar) = browser();
    let (laptop, laptop_jar) = browser();
    citizen_sign_in(&app, &phone, &siti.password).await;
    citizen_sign_in(&app, &laptop, &siti.password).await;
    let copied = copied_cookies(&app, &phone_jar, "/account");
    assert_eq!(status_with_cookie(&app, "/account", &copied).await, 200);

    // Signing out on the phone ends that session, also for the copy...
    post_with_csrf(&app, &phone, "/account", "/logout").await;
    assert_eq!(status_with_cookie(&app, "/account", &copied).await, 303);
    // ...but not the laptop's.
    let laptop_cookie = copied_cookies(&app, &laptop_jar, "/account");
    assert_eq!(
        status_with_cookie(&app, "/account", &laptop_cookie).await,
        200
    );

    // Sign out everywhere, from a third device: the laptop is out too.
    let (third, _) = browser();
    citizen_sign_in(&app, &third, &siti.password).await;
    post_with_csrf(&app, &third, "/account", "/logout/everywhere").await;
    assert_eq!(
        status_with_cookie(&app, "/account", &laptop_cookie).await,
        303
    );
    assert_eq!(
        third
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

async fn a_staff_cookie_replayed_after_sign_out_or_disable_is_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    crate::staff::create_staff(&app, "petugas@peruri.test", "kopi tubruk pagi hari siang");
    let (staff, jar) = browser();
    let response = crate::staff::staff_sign_in(
        &app,
        &staff,
        "petugas@peruri.test",
        "kopi tubruk pagi hari siang",
    )
    .await;
    assert_eq!(response.status(), 303);
    let copied = copied_cookies(&app, &jar, "/staff/failures");
    assert_eq!(
        status_with_cookie(&app, "/staff/failures", &copied).await,
        200
    );
    post_with_csrf(&app, &staff, "/staff/failures", "/staff/logout").await;
    assert_eq!(
        status_with_cookie(&app, "/staff/failures", &copied).await,
        303
    );

    // Disabled by an operator: every session of that staff member ends.
    let (again, again_jar) = browser();
    crate::staff::staff_sign_in(
        &app,
        &again,
        "petugas@peruri.test",
        "kopi tubruk pagi hari siang",
    )
    .await;
    let copied = copied_cookies(&app, &again_jar, "/staff/failures");
    assert_eq!(
        status_with_cookie(&app, "/staff/failures", &copied).await,
        200
    );
    {
        let mut conn = app.state.pool.get().unwrap();
        emeterai::db::staff::disable(&mut conn, "petugas@peruri.test", app.state.clock.now())
            .unwrap();
    }
    assert_eq!(
        status_with_cookie(&app, "/staff/failures", &copied).await,
        303
    );
}

/// Being signed in shows: the header leads to the account on every page,
/// and the sign-in page leads there too instead of showing the form again.
async fn being_signed_in_is_visible(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, before) = app.get_html("/help").await;
    assert!(before.contains(r#"<a class="header-link" href="/login">Masuk</a>"#));
    let mut siti = crate::helpers::Registration::default();
    app.register_and_verify(&mut siti).await;
    for path in ["/help", "/register", "/account"] {
        let (_, html) = app.get_html(path).await;
        assert!(
            html.contains(r#"<a class="header-link" href="/account">Akun saya</a>"#),
            "{path}"
        );
    }
    let response = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/account");
}

on_both_backends!(
    being_signed_in_is_visible,
    a_citizen_cookie_replayed_after_sign_out_is_refused,
    a_staff_cookie_replayed_after_sign_out_or_disable_is_refused,
);
