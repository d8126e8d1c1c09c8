//! The hardest cases without a phone call: "this was not me" from any mail
//! about a registration or an account, and "which address did I use?"
//! where a NIK is already registered. On both backends, through the
//! running portal and the mail provider stub, as a citizen takes them.

use crate::helpers::{Backend, Registration, TestApp, attr_after, reference_code};
use crate::mail_stub::SentMail;
use crate::on_both_backends;

/// The `/not-me?token=...` path of a mail.
fn not_me_path(mail: &SentMail) -> String {
    let start = mail
        .text
        .find("/not-me?token=")
        .expect("a not-me link in the mail");
    mail.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Opens a not-me link in `client` and presses its button: the page.
async fn press_not_me(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
) -> (reqwest::StatusCode, String) {
    let page = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").expect("csrf_token");
    let token = attr_after(&html, r#"name="token""#, "value").expect("token");
    let response = client
        .post(app.url("/not-me"))
        .form(&[("csrf_token", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn not_me_cancels_a_registration_someone_else_made(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A stranger registers with Siti's address (and someone's NIK).
    let mut stranger = Registration::default();
    let response = app.register(&mut stranger).await;
    assert_eq!(response.status(), 303);
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let verify_path = crate::mail_stub::verification_path(&mails[0]);
    let not_me = not_me_path(&mails[0]);
    assert!(
        mails[0].html.contains("/not-me?token="),
        "in the HTML part too"
    );

    // Siti opens the second link in her own browser: it changes nothing
    // (a mail scanner opening every link cancels nothing), twice over.
    let siti = app.new_browser();
    for _ in 0..2 {
        let page = siti.get(app.url(&not_me)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&emeterai::domain::email_mask("siti.aminah@example.co.id")),
            "{html}"
        );
        assert!(html.contains("Batalkan pendaftaran ini"), "{html}");
    }
    let head = siti.head(app.url(&not_me)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let (status, _) = app.get_html(&verify_path).await;
    assert_eq!(
        status, 200,
        "the verification link still works before the button"
    );

    // The button: the registration is gone, with its data and photo.
    let (status, html) = press_not_me(&app, &siti, &not_me).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Pendaftaran dibatalkan"), "{html}");
    let reference = reference_code(&html).expect("a reference code for support");
    assert!(reference.starts_with("NTM-"), "{reference}");
    {
        let mut conn = app.state.pool.get().unwrap();
        let keys = &app.state.keys;
        assert!(
            emeterai::db::registrations::find_by_email(
                &mut conn,
                keys,
                "siti.aminah@example.co.id"
            )
            .unwrap()
            .is_none()
        );
        use diesel::prelude::*;
        let photos: i64 = emeterai::schema::ktp_uploads::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(photos, 0, "the photo is deleted");
        // Staff see it in the failure log, under a reason of its own.
        let rows = emeterai::db::staff::related(
            &mut conn,
            keys,
            Some("siti.aminah@example.co.id"),
            None,
            10,
        )
        .unwrap();
        assert!(
            rows.iter()
                .any(|r| r.reference == reference && r.reason == "not_me"),
            "{rows:?}"
        );
    }
    // The verification link stops working; the not-me link says it was used.
    let (status, html) = app.get_html(&verify_path).await;
    assert_ne!(status, 200, "{html}");
    let (status, html) = siti
        .get(app.url(&not_me))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let html = html.text().await.unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("sudah dipakai"), "{html}");
    assert!(!html.contains(r#"name="token""#), "no button any more");

    // The address and the NIK are free at once: the real Siti registers.
    let mut siti_form = Registration::default();
    app.register_and_verify(&mut siti_form).await;
}

async fn not_me_on_an_account_mail_ends_every_session_and_mails_a_reset_link(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut budi = Registration::budi();
    app.register_and_verify(&mut budi).await;
    let (status, _) = app.get_html("/account").await;
    assert_eq!(status, 200, "signed in");
    // Someone asks for a reset of Budi's password; Budi did not.
    let stranger = app.new_browser();
    let csrf = crate::helpers::csrf_of(&stranger, app.url("/password/forgot")).await;
    let response = stranger
        .post(app.url("/password/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", "budi@example.com")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection() || response.status() == 200);
    let mails = app.wait_for_mail("budi@example.com", 2).await;
    let reset = &mails[1];
    assert!(reset.text.contains("/password/reset?token="));
    let not_me = not_me_path(reset);
    let (status, html) = press_not_me(&app, &app.new_browser(), &not_me).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Akun diamankan"), "{html}");
    assert!(reference_code(&html).unwrap().starts_with("NTM-"));
    // Every session ended: Budi's browser is signed out.
    let response = app.get("/account").await;
    assert_eq!(response.status(), 303, "signed out");
    // A fresh reset link went to the account's own address.
    let mails = app.wait_for_mail("budi@example.com", 3).await;
    assert!(mails[2].text.contains("/password/reset?token="));
    // Pressing it again does nothing more.
    let page = app
        .new_browser()
        .get(app.url(&not_me))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("sudah dipakai"));
}

async fn not_me_links_that_lead_nowhere_get_clear_pages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Mangled and unknown tokens.
    for path in [
        "/not-me",
        "/not-me?token=abc",
        &format!("/not-me?token={}", "a".repeat(64)),
    ] {
        let (status, html) = app.get_html(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Tautan tidak dikenal"), "{html}");
        // In English, in a browser of its own (the language is remembered).
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = app
            .new_browser()
            .get(app.url(&format!("{path}{sep}lang=en")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404);
        let html = page.text().await.unwrap();
        assert!(html.contains("Link not recognised"), "{html}");
    }
    // A forged POST (no session, wrong CSRF) changes nothing.
    let mut reg = Registration::default();
    app.register(&mut reg).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let not_me = not_me_path(&mails[0]);
    let token = not_me.trim_start_matches("/not-me?token=");
    let response = app
        .new_browser()
        .post(app.url("/not-me"))
        .form(&[("csrf_token", "forged"), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    {
        let mut conn = app.state.pool.get().unwrap();
        assert!(
            emeterai::db::registrations::find_by_email(
                &mut conn,
                &app.state.keys,
                "siti.aminah@example.co.id"
            )
            .unwrap()
            .is_some(),
            "nothing cancelled"
        );
    }
    // An expired link: older than EMETERAI_NOT_ME_TTL_DAYS.
    app.state.clock.advance(chrono::Duration::days(
        i64::from(app.state.settings.not_me_ttl_days) + 1,
    ));
    let (status, html) = app.get_html(&not_me).await;
    assert_eq!(status, 410, "{html}");
    assert!(html.contains("kedaluwarsa"), "{html}");
}

/// Two presses at once (two tabs): one cancels, the other is told it was
/// done; nothing breaks.
async fn two_presses_at_once_cancel_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut reg = Registration::default();
    app.register(&mut reg).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let not_me = not_me_path(&mails[0]);
    let browser = app.new_browser();
    let html = browser
        .get(app.url(&not_me))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let token = attr_after(&html, r#"name="token""#, "value").unwrap();
    let press = || {
        browser
            .post(app.url("/not-me"))
            .form(&[("csrf_token", csrf.as_str()), ("token", token.as_str())])
            .send()
    };
    let (a, b) = futures_util::future::join(press(), press()).await;
    let mut pages = Vec::new();
    for r in [a.unwrap(), b.unwrap()] {
        let status = r.status();
        let page = r.text().await.unwrap();
        assert_eq!(status, 200, "{page}");
        pages.push(page);
    }
    let cancelled = pages
        .iter()
        .filter(|p| p.contains("Pendaftaran dibatalkan"))
        .count();
    assert_eq!(cancelled, 1, "{pages:?}");
}

async fn a_registered_nik_gets_a_reminder_to_the_address_that_holds_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut budi = Registration::budi();
    app.register_and_verify(&mut budi).await;
    // Budi forgot which address he used and registers again with another.
    let browser = app.new_browser();
    let again = Registration {
        email: "budi.lain@example.net".into(),
        ..Registration::budi()
    };
    let (csrf, submission) = {
        let html = browser
            .get(app.url("/register"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (
            attr_after(&html, r#"name="csrf_token""#, "value").unwrap(),
            attr_after(&html, r#"name="submission_id""#, "value").unwrap(),
        )
    };
    let form = Registration {
        csrf_token: csrf,
        submission_id: submission,
        ..again
    };
    let response = browser
        .post(app.url("/register"))
        .multipart(form.to_form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    // The page names the holding address, masked, and offers the reminder.
    let masked = emeterai::domain::email_mask("budi@example.com");
    assert!(html.contains(&masked), "{html}");
    assert!(!html.contains("budi@example.com"), "never in full");
    assert!(html.contains(r#"action="/register/remind""#), "{html}");
    let csrf = attr_after(&html, r#"action="/register/remind""#, "value")
        .or_else(|| attr_after(&html, r#"name="csrf_token""#, "value"))
        .unwrap();
    let response = browser
        .post(app.url("/register/remind"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(&masked), "{html}");
    // The reminder arrives at the address that holds the NIK: sign-in,
    // reset and not-me links; and the reset link works.
    let mails = app.wait_for_mail("budi@example.com", 2).await;
    let reminder = &mails[1];
    assert!(reminder.text.contains("/login"), "{}", reminder.text);
    assert!(reminder.text.contains("/password/reset?token="));
    assert!(reminder.text.contains("/not-me?token="));
    assert!(
        !app.mail
            .accepted()
            .iter()
            .any(|m| m.to[0] == "budi.lain@example.net"),
        "nothing to the address typed"
    );
    // A POST without the page before it (no NIK in the session) sends
    // nothing and says so.
    let other = app.new_browser();
    let csrf = crate::helpers::csrf_of(&other, app.url("/register")).await;
    let response = other
        .post(app.url("/register/remind"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// The reminder is limited per NIK (and address, and client), counted in
/// the database before any mail: with parallel presses on two instances,
/// no more mails than the limit.
async fn reminders_are_limited_with_parallel_requests_on_two_instances(backend: Backend) {
    // Instances of one deployment share the secret key (the limit keys
    // are keyed hashes).
    let configure = |s: &mut emeterai::config::Settings| {
        s.remind_per_hour = 2;
        s.secret_key = Some("one secret for every instance of the portal".into());
    };
    let Some(app) = TestApp::spawn_with(backend, configure).await else {
        return;
    };
    let other = TestApp::spawn_on(app.db.share(), configure).await.unwrap();
    let mut budi = Registration::budi();
    app.register_and_verify(&mut budi).await;
    // Four browsers, each told the NIK is taken, alternately on the two
    // (the 409 answers have a limit of their own, five an hour).
    let mut browsers = Vec::new();
    for i in 0..4 {
        let instance = if i % 2 == 0 { &app } else { &other };
        let browser = instance.new_browser();
        let html = browser
            .get(instance.url("/register"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let form = Registration {
            email: format!("budi.{i}@example.net"),
            csrf_token: attr_after(&html, r#"name="csrf_token""#, "value").unwrap(),
            submission_id: attr_after(&html, r#"name="submission_id""#, "value").unwrap(),
            ..Registration::budi()
        };
        let response = browser
            .post(instance.url("/register"))
            .multipart(form.to_form())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
        let html = response.text().await.unwrap();
        let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
        browsers.push((instance, browser, csrf));
    }
    let presses = browsers.iter().map(|(instance, browser, csrf)| {
        browser
            .post(instance.url("/register/remind"))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(presses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    // One verification mail and two reminders, no more (either instance's
    // worker may deliver a reminder).
    let to_budi = || {
        app.mail
            .accepted()
            .into_iter()
            .chain(other.mail.accepted())
            .filter(|m| m.to[0] == "budi@example.com")
            .count()
    };
    for _ in 0..200 {
        if to_budi() >= 3 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(to_budi(), 3);
}

on_both_backends!(
    not_me_cancels_a_registration_someone_else_made,
    not_me_on_an_account_mail_ends_every_session_and_mails_a_reset_link,
    not_me_links_that_lead_nowhere_get_clear_pages,
    two_presses_at_once_cancel_once,
    a_registered_nik_gets_a_reminder_to_the_address_that_holds_it,
    reminders_are_limited_with_parallel_requests_on_two_instances,
);
