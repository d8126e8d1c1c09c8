//! Delivery feedback from the mail provider: signed events posted to a
//! running portal, and what citizens and staff see change. A bounced
//! verification mail whose address is corrected and then verified; a
//! forged event refused; the same event twice counted once.

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::on_both_backends;

const SECRET: &str = "the provider and the portal share this secret";

async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |s| {
        s.mail_webhook_secret = Some(SECRET.into());
    })
    .await
}

/// The provider's event time: the test's clock, `secs` later (RFC 3339).
const AT: &str = "{AT}";

fn event(id: &str, reference: &str, kind: &str, permanent: bool) -> String {
    format!(
        r#"{{"events": [{{"id": "{id}", "reference": "{reference}", "kind": "{kind}", "permanent": {permanent}, "recipient": "x@example.com", "at": "{AT}", "detail": "550 5.1.1 user unknown"}}]}}"#
    )
}

/// `body` with its event time set from the app's clock, `secs` on.
fn at(app: &TestApp, body: &str, secs: i64) -> String {
    let when = app.state.clock.now() + chrono::Duration::seconds(secs);
    body.replace(AT, &when.and_utc().to_rfc3339())
}

async fn post_event(app: &TestApp, body: &str, signature: Option<String>) -> (u16, String) {
    let mut request = app
        .client
        .post(app.url("/hooks/mail-events"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("X-Emeterai-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn ev(app: &TestApp, id: &str, reference: &str, kind: &str, permanent: bool) -> String {
    at(app, &event(id, reference, kind, permanent), 0)
}

fn signed(body: &str) -> Option<String> {
    Some(emeterai::services::mail_events::sign(
        SECRET,
        body.as_bytes(),
    ))
}

fn delivery_of(app: &TestApp, id: &str) -> Option<String> {
    use diesel::prelude::*;
    let mut conn = app.state.pool.get().unwrap();
    emeterai::schema::mail_outbox::table
        .find(id)
        .select(emeterai::schema::mail_outbox::delivery)
        .first(&mut conn)
        .unwrap()
}

async fn metric(app: &TestApp, kind: &str) -> String {
    let (_, text) = app.get_html("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(&format!("emeterai_mail_events_total{{kind=\"{kind}\"}}")))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .unwrap_or_else(|| "0".into())
}

async fn a_bounced_verification_mail_is_corrected_and_verified(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    // Siti mistypes her address: the domain exists, the mailbox does not.
    let mut siti = Registration {
        email: "siti.amina@example.co.id".into(),
        ..Registration::default()
    };
    let response = app.register(&mut siti).await;
    assert_eq!(response.status(), 303);
    let mails = app.wait_for_mail("siti.amina@example.co.id", 1).await;
    let reference = mails[0].reference.clone();
    assert!(!reference.is_empty(), "the outbox id goes to the provider");
    let (_, page) = app.get_html("/register/check-email").await;
    assert!(!page.contains("tidak dapat dikirim"), "nothing bounced yet");

    // The provider reports a hard bounce, signed.
    let body = ev(&app, "evt-1", &reference, "bounced", true);
    let (status, _) = post_event(&app, &body, signed(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(delivery_of(&app, &reference).as_deref(), Some("bounced"));
    // The same event again counts once.
    let (status, _) = post_event(&app, &body, signed(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(metric(&app, "bounced").await, "1");
    assert_eq!(metric(&app, "duplicate").await, "1");

    // Siti's check-email page says so, in plain words, with a form.
    let (status, page) = app.get_html("/register/check-email").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Email ke alamat ini tidak dapat dikirim"),
        "{page}"
    );
    assert!(
        page.contains(r#"action="/register/correct-email""#),
        "{page}"
    );
    // Sending again is pointless and says why.
    let csrf = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    let response = app
        .client
        .post(app.url("/verify/resend"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.amina@example.co.id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        "/register/check-email?notice=bounced"
    );
    // A bad address in the form: the page again, 422, nothing changed.
    let response = app
        .client
        .post(app.url("/register/correct-email"))
        .form(&[("csrf_token", csrf.as_str()), ("email", "siti.aminah@")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    // She corrects it: a new link goes to the new address, data kept.
    let response = app
        .client
        .post(app.url("/register/correct-email"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.aminah@example.co.id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        "/register/check-email?notice=corrected"
    );
    let (_, page) = app.get_html("/register/check-email?notice=corrected").await;
    assert!(page.contains("siti.aminah@example.co.id"), "{page}");
    assert!(!page.contains("Email ke alamat ini tidak dapat dikirim"));
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let path = crate::mail_stub::verification_path(&mails[0]);
    let response = app
        .choose_password(&path, &siti.password, &siti.password)
        .await;
    assert_eq!(response.status(), 303);
    {
        let mut conn = app.state.pool.get().unwrap();
        let account = emeterai::db::accounts::find_by_email(
            &mut conn,
            &app.state.keys,
            "siti.aminah@example.co.id",
        )
        .unwrap()
        .expect("the account under the corrected address");
        assert_eq!(account.full_name, "Siti Aminah", "the data were kept");
        assert!(
            emeterai::db::accounts::find_upload(&mut conn, &app.state.keys, &account.ktp_upload_id)
                .unwrap()
                .is_some(),
            "and the photo"
        );
    }
    // Staff see the bounce in the mail's timeline entry.
    let outbox_row = {
        let mut conn = app.state.pool.get().unwrap();
        emeterai::db::outbox::mails_to(&mut conn, &app.state.keys, "siti.amina@example.co.id")
            .unwrap()
    };
    assert_eq!(outbox_row[0].delivery.as_deref(), Some("bounced"));
}

async fn no_more_mail_goes_to_a_hard_bounced_address(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let mut reg = Registration::default();
    app.register(&mut reg).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let body = ev(&app, "evt-c", &mails[0].reference, "complained", false);
    assert_eq!(post_event(&app, &body, signed(&body)).await.0, 200);
    // Past the resend cooldown, another browser asks for the link again
    // for that address (the answer reveals nothing): the mail is queued
    // and never sent.
    app.state.clock.advance(chrono::Duration::seconds(
        i64::from(app.state.settings.resend_cooldown_secs) + 1,
    ));
    let browser = app.new_browser();
    let csrf = crate::helpers::csrf_of(&browser, app.url("/register/check-email")).await;
    let response = browser
        .post(app.url("/verify/resend"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "siti.aminah@example.co.id"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    // The worker takes it within a second or two; it stays unsent.
    let mut failed = false;
    for _ in 0..100 {
        let mut conn = app.state.pool.get().unwrap();
        let mails =
            emeterai::db::outbox::mails_to(&mut conn, &app.state.keys, "siti.aminah@example.co.id")
                .unwrap();
        if mails.iter().any(|m| {
            m.status == "failed"
                && m.last_error.as_deref() == Some(emeterai::services::outbox::UNDELIVERABLE)
        }) {
            failed = true;
            break;
        }
        drop(conn);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failed, "the second mail was held back");
    assert_eq!(
        app.mail
            .accepted()
            .iter()
            .filter(|m| m.to[0] == "siti.aminah@example.co.id")
            .count(),
        1
    );
}

async fn forged_and_malformed_events_change_nothing(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let mut reg = Registration::default();
    app.register(&mut reg).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let reference = mails[0].reference.clone();
    let body = ev(&app, "evt-f", &reference, "bounced", true);
    // Unsigned, signed with another secret, signed over another body.
    let (status, text) = post_event(&app, &body, None).await;
    assert_eq!(status, 401);
    assert!(
        text.starts_with("signature missing or wrong"),
        "a plain answer: {text}"
    );
    for signature in [
        None,
        Some(emeterai::services::mail_events::sign(
            "a guess",
            body.as_bytes(),
        )),
        signed(&ev(&app, "evt-f", &reference, "delivered", false)),
        Some("sha256=zz".to_string()),
    ] {
        let (status, _) = post_event(&app, &body, signature).await;
        assert_eq!(status, 401);
    }
    assert_eq!(delivery_of(&app, &reference), None, "nothing changed");
    assert_eq!(metric(&app, "refused").await, "5");
    // Signed but not our format, or an unknown kind: 400, nothing changed.
    for bad in [
        "not json".to_string(),
        ev(&app, "evt-g", &reference, "exploded", true),
        event("evt-h", &reference, "bounced", true).replace(AT, "yesterday"),
    ] {
        let (status, _) = post_event(&app, &bad, signed(&bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(delivery_of(&app, &reference), None);
    // An event for a mail that is not ours is acknowledged and ignored.
    let unknown = ev(&app, "evt-u", "no-such-mail", "bounced", true);
    assert_eq!(post_event(&app, &unknown, signed(&unknown)).await.0, 200);
    assert_eq!(metric(&app, "unknown_mail").await, "1");
    // Delivered, then (out of order) an older deferral: delivered stays.
    let delivered = at(&app, &event("evt-d", &reference, "delivered", false), 300);
    assert_eq!(
        post_event(&app, &delivered, signed(&delivered)).await.0,
        200
    );
    let deferred = ev(&app, "evt-e", &reference, "deferred", false);
    assert_eq!(post_event(&app, &deferred, signed(&deferred)).await.0, 200);
    assert_eq!(delivery_of(&app, &reference).as_deref(), Some("delivered"));
    // Without a configured secret the hook refuses everything.
    let Some(plain) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(post_event(&plain, &body, signed(&body)).await.0, 401);
}

on_both_backends!(
    a_bounced_verification_mail_is_corrected_and_verified,
    no_more_mail_goes_to_a_hard_bounced_address,
    forged_and_malformed_events_change_nothing,
);
