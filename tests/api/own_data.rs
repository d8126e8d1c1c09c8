//! The citizen's own data (UU 27/2022) through the running portal, on both
//! backends: see it, download it (and who looked), delete the account.

use base64::Engine;
use diesel::prelude::*;

use crate::helpers::{Backend, Registration, TestApp, attr_after};
use crate::on_both_backends;

async fn post_password(app: &TestApp, path: &str, password: &str) -> reqwest::Response {
    let csrf = app.csrf_from(path).await;
    app.client
        .post(app.url(path))
        .form(&[("csrf_token", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn the_download_holds_everything_and_only_the_owners_data(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.exports_per_day = 2).await else {
        return;
    };
    // Another citizen, whose data must not appear.
    let mut budi = Registration::budi();
    let budi_browser_app = &app;
    let budi_browser = budi_browser_app.new_browser();
    let response = app.register_in(&budi_browser, &mut budi).await;
    assert_eq!(response.status(), 303);

    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    // Siti tries to register again (a dropped connection): a failure-log
    // row about her address, which a staff member opens and reveals.
    let mut again = Registration::default();
    let response = app.new_browser();
    let taken = app.register_in(&response, &mut again).await;
    assert_eq!(taken.status(), 409);
    let reference = crate::helpers::reference_code(&taken.text().await.unwrap()).unwrap();
    let staff = crate::staff::signed_in_staff(&app).await;
    let page = staff
        .get(app.url(&format!("/staff/failures/{reference}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf =
        crate::helpers::csrf_of(&staff, app.url(&format!("/staff/failures/{reference}"))).await;
    let revealed = staff
        .post(app.url(&format!("/staff/failures/{reference}/reveal")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("reason", "Warga menelepon 1500 159"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revealed.status(), 200);

    // The account page shows everything, and who looked.
    let (status, html) = app.get_html("/account").await;
    assert_eq!(status, 200);
    for shown in [
        "Siti Aminah",
        "3578015708950001",
        "1995-08-17",
        "siti.aminah@example.co.id",
        "Membuka pendaftaran gagal",
        "Warga menelepon 1500 159",
        &reference,
    ] {
        assert!(html.contains(shown), "{shown} on the account page: {html}");
    }
    assert!(
        html.contains(r#"name="session""#),
        "the devices, each with its button"
    );
    let photo = app.get("/account/photo").await;
    assert_eq!(photo.status(), 200);
    assert_eq!(&photo.bytes().await.unwrap()[..2], &[0xFF, 0xD8]);
    let outsider = app
        .new_browser()
        .get(app.url("/account/photo"))
        .send()
        .await
        .unwrap();
    assert_eq!(outsider.status(), 403, "no one else's photo");

    // The download: the password again.
    let response = post_password(&app, "/account/download", "not my password").await;
    assert_eq!(response.status(), 422);
    let response = post_password(&app, "/account/download", &siti.password).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"emeterai-data-")
    );
    let text = response.text().await.unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(data["format"], "emeterai-own-data/1");
    assert_eq!(data["account"]["nik"], "3578015708950001");
    assert_eq!(data["account"]["email"], "siti.aminah@example.co.id");
    assert_eq!(data["account"]["full_name"], "Siti Aminah");
    let photo = base64::engine::general_purpose::STANDARD
        .decode(data["ktp_photo"]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&photo[..2], &[0xFF, 0xD8]);
    assert!(!data["sessions"].as_array().unwrap().is_empty());
    let failures = data["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["reference"] == reference.as_str()),
        "{text}"
    );
    let record = data["processing_record"].as_array().unwrap();
    assert!(
        record.iter().any(|p| p["action"] == "view_failure"),
        "{text}"
    );
    assert!(
        record
            .iter()
            .any(|p| p["action"] == "failure_reveal" && p["reason"] == "Warga menelepon 1500 159"),
        "{text}"
    );
    assert!(
        !text.contains("petugas@peruri.test"),
        "staff are named by role"
    );
    assert!(!text.contains("/verify?token="), "never the links");
    for other in ["budi@example.com", "3201011708900003", "Budi Santoso"] {
        assert!(!text.contains(other), "{other} in Siti's download");
    }
    // Limited per account per day.
    let response = post_password(&app, "/account/download", &siti.password).await;
    assert_eq!(response.status(), 429);
}

async fn deletion_is_cancelled_by_signing_in_then_carried_out(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    // A failure-log row about her (a second try meets "already registered").
    let other = app.new_browser();
    let response = app.register_in(&other, &mut Registration::default()).await;
    assert_eq!(response.status(), 409);
    {
        let mut conn = app.state.pool.get().unwrap();
        let about_her: i64 = emeterai::schema::failures::table
            .filter(emeterai::schema::failures::email.is_not_null())
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert!(about_her > 0);
    }
    let (status, form) = app.get_html("/account/delete").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("Yang disimpan"),
        "the page says what is kept: {form}"
    );
    let response = post_password(&app, "/account/delete", "salah").await;
    assert_eq!(response.status(), 422);
    let response = post_password(&app, "/account/delete", &siti.password).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/account?done=requested");
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    assert!(
        mails[1].subject.contains("penghapusan"),
        "{}",
        mails[1].subject
    );
    assert!(mails[1].text.contains("Yang disimpan"));
    let (_, html) = app.get_html("/account").await;
    assert!(html.contains("Akun Anda akan dihapus pada"), "{html}");
    // A second request changes nothing.
    let response = post_password(&app, "/account/delete", &siti.password).await;
    assert_eq!(response.headers()["location"], "/account?done=already");

    // Signing in cancels it.
    let response = app.login("siti.aminah@example.co.id", &siti.password).await;
    assert_eq!(response.headers()["location"], "/account?done=kept");
    let (_, html) = app.get_html("/account?done=kept").await;
    assert!(html.contains("dibatalkan"), "{html}");
    assert!(!html.contains("Akun Anda akan dihapus pada"));

    // Asked again; a week later the worker carries it out.
    let response = post_password(&app, "/account/delete", &siti.password).await;
    assert_eq!(response.headers()["location"], "/account?done=requested");
    let svc = app.state.services();
    assert_eq!(
        emeterai::services::own_data::carry_out_deletions(&svc, app.state.clock.now())
            .await
            .unwrap(),
        0,
        "not before its day"
    );
    app.state
        .clock
        .advance(chrono::Duration::days(7) + chrono::Duration::minutes(1));
    let svc = app.state.services();
    assert_eq!(
        emeterai::services::own_data::carry_out_deletions(&svc, app.state.clock.now())
            .await
            .unwrap(),
        1
    );
    {
        let mut conn = app.state.pool.get().unwrap();
        use emeterai::schema::{account_deletions, accounts, failures, ktp_uploads, mail_outbox};
        let left: i64 = accounts::table.count().get_result(&mut conn).unwrap();
        assert_eq!(left, 0);
        let photos: i64 = ktp_uploads::table.count().get_result(&mut conn).unwrap();
        assert_eq!(photos, 0, "the photo is gone");
        let mails: i64 = mail_outbox::table.count().get_result(&mut conn).unwrap();
        assert_eq!(mails, 0, "the mails too");
        let kept: i64 = account_deletions::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(kept, 1, "one record that an account was deleted");
        let identifying: i64 = failures::table
            .filter(
                failures::email
                    .is_not_null()
                    .or(failures::nik_hash.is_not_null()),
            )
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(
            identifying, 0,
            "failure rows keep nothing that identifies her"
        );
    }
    let copy = crate::sealing::database_copy(&app, backend);
    assert!(
        !crate::sealing::contains(&copy, b"JFIF"),
        "no photo in the copy"
    );
    // Her session ended with the account; her NIK and email register again.
    let (status, _) = app.get_html("/account").await;
    assert_ne!(status, 200);
    let mut again = Registration::default();
    app.register_and_verify(&mut again).await;
}

async fn post_form(
    app: &TestApp,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf_from(page).await;
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    app.client
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn link_in(mail: &crate::mail_stub::SentMail, path: &str) -> String {
    let start = mail.text.find(path).expect("the link in the mail");
    mail.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

async fn phone_and_email_changes_with_their_mails(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    let mut budi = Registration::budi();
    let budi_app = app.new_browser();
    assert_eq!(app.register_in(&budi_app, &mut budi).await.status(), 303);
    let link = crate::mail_stub::verification_path(&app.wait_for_mail(&budi.email, 1).await[0]);
    let response = app
        .choose_password_in(&budi_app, &link, &budi.password, &budi.password)
        .await;
    assert_eq!(response.status(), 303);

    // The phone: checked as at sign-up.
    let response = post_form(
        &app,
        "/account/correct",
        "/account/phone",
        &[("phone", "12")],
    )
    .await;
    assert_eq!(response.status(), 422);
    let response = post_form(
        &app,
        "/account/correct",
        "/account/phone",
        &[("phone", "0857-1111-3333")],
    )
    .await;
    assert_eq!(response.headers()["location"], "/account?done=phone");
    let (_, html) = app.get_html("/account").await;
    assert!(html.contains("+62 857-1111-3333"), "{html}");

    // An address another account holds: the page says the same, that
    // address is told, nothing changes.
    let response = post_form(
        &app,
        "/account/correct",
        "/account/email",
        &[("email", &budi.email)],
    )
    .await;
    assert_eq!(response.headers()["location"], "/account?done=email_sent");
    let mails = app.wait_for_mail(&budi.email, 2).await;
    assert!(
        mails[1].subject.contains("tidak dapat dipakai"),
        "{}",
        mails[1].subject
    );
    assert!(!mails[1].text.contains("/account/email/confirm"));

    // A new address: a link to it; the old one is told once it is opened.
    let response = post_form(
        &app,
        "/account/correct",
        "/account/email",
        &[("email", "siti.baru@example.org")],
    )
    .await;
    assert_eq!(response.headers()["location"], "/account?done=email_sent");
    let mails = app.wait_for_mail("siti.baru@example.org", 1).await;
    let confirm = link_in(&mails[0], "/account/email/confirm?token=");
    let other = app.new_browser();
    let page = other.get(app.url(&confirm)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&emeterai::domain::email_mask("siti.baru@example.org")));
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let token = attr_after(&html, r#"name="token""#, "value").unwrap();
    let response = other
        .post(app.url("/account/email/confirm"))
        .form(&[("csrf_token", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        "/account?done=email_changed"
    );
    let old = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    assert!(old[1].subject.contains("diganti"), "{}", old[1].subject);
    assert!(
        old[1].text.contains("/not-me?token="),
        "the old address may say not me"
    );
    // Used once.
    let page = other.get(app.url(&confirm)).send().await.unwrap();
    assert_eq!(page.status(), 404);
    // She signs in with the new address only.
    assert_eq!(
        app.login("siti.baru@example.org", &siti.password)
            .await
            .status(),
        303
    );
    assert_ne!(
        app.login("siti.aminah@example.co.id", &siti.password)
            .await
            .status(),
        303
    );
}

async fn a_correction_is_decided_by_staff_on_the_clock(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    let send = |name: &str, photo: Option<Vec<u8>>| {
        let name = name.to_string();
        async {
            let csrf = app.csrf_from("/account/correct").await;
            let mut form = reqwest::multipart::Form::new()
                .text("csrf_token", csrf)
                .text("full_name", name)
                .text("birth_date", "1995-08-18")
                .text("note", "Salah ketik saat mendaftar.");
            if let Some(photo) = photo {
                form = form.part(
                    "ktp_photo",
                    reqwest::multipart::Part::bytes(photo)
                        .file_name("ktp.jpg")
                        .mime_str("image/jpeg")
                        .unwrap(),
                );
            }
            app.client
                .post(app.url("/account/correction"))
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    let response = send("Siti Aminah Putri", Some(crate::helpers::fake_jpeg(20_000))).await;
    assert_eq!(response.status(), 422, "a photo that is no photo");
    let response = send("Siti Aminah Putri", Some(crate::helpers::noisy_jpeg(31))).await;
    assert_eq!(response.headers()["location"], "/account?done=correction");

    let staff = crate::staff::signed_in_staff(&app).await;
    let queue = staff
        .get(app.url("/staff/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        queue.contains("Perbaikan nama atau tanggal lahir"),
        "{queue}"
    );
    assert!(!queue.contains("Terlambat"), "not overdue yet");
    app.state.clock.advance(chrono::Duration::hours(73));
    // Three days on, staff sign in again.
    let staff = app.new_browser();
    let response = crate::staff::staff_password_step(
        &app,
        &staff,
        crate::staff::STAFF_EMAIL,
        crate::staff::STAFF_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303);
    // A recovery code (the authenticator's code of the first sign-in was
    // used already, and the test's clock is three days ahead).
    let response =
        crate::staff::staff_code_step(&app, &staff, &crate::staff::recovery_code(0)).await;
    assert_eq!(response.status(), 303);
    let queue = staff
        .get(app.url("/staff/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        queue.contains("Terlambat"),
        "overdue after 3×24 hours: {queue}"
    );
    let id = queue
        .split("/staff/requests/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let page_path = format!("/staff/requests/{id}");
    let page = staff
        .get(app.url(&page_path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Siti Aminah Putri") && page.contains("1995-08-18"),
        "{page}"
    );
    let photo = staff
        .get(app.url(&format!("{page_path}/photo/new")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    let csrf = crate::helpers::csrf_of(&staff, app.url(&page_path)).await;
    let response = staff
        .post(app.url(&format!("{page_path}/approve")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("message", "Sesuai foto KTP terbaru."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        format!("{page_path}?done=done").as_str()
    );
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    assert!(
        mails[1].subject.contains("diterima"),
        "{}",
        mails[1].subject
    );
    assert!(mails[1].text.contains("Sesuai foto KTP terbaru."));
    // The account is corrected; the answer is recorded with its time.
    app.login("siti.aminah@example.co.id", &siti.password).await;
    let (_, html) = app.get_html("/account").await;
    assert!(
        html.contains("Siti Aminah Putri") && html.contains("1995-08-18"),
        "{html}"
    );
    assert!(
        html.contains("Menerima perbaikan data"),
        "in her processing record: {html}"
    );
    let queue = staff
        .get(app.url("/staff/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        queue.contains("petugas@peruri.test"),
        "answered, by whom: {queue}"
    );
    // A second decision changes nothing.
    let response = staff
        .post(app.url(&format!("{page_path}/reject")))
        .form(&[("csrf_token", csrf.as_str()), ("message", "Terlambat.")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        format!("{page_path}?done=not_now").as_str()
    );
}

on_both_backends!(
    phone_and_email_changes_with_their_mails,
    a_correction_is_decided_by_staff_on_the_clock,
    the_download_holds_everything_and_only_the_owners_data,
    deletion_is_cancelled_by_signing_in_then_carried_out,
);
