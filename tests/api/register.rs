//! Registration, verification and sign-in, on both backends, with a real
//! mail provider stub on loopback.

use diesel::prelude::*;
use emeterai::schema::{accounts, mail_outbox, registration_tokens, registrations};

use crate::helpers::{
    Backend, Registration, TestApp, attr_after, csrf_of, fake_jpeg, reference_code,
};
use crate::mail_stub::verification_path;
use crate::on_both_backends;

fn count_accounts(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    accounts::table.count().get_result(&mut *conn).unwrap()
}

fn count_registrations(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    registrations::table.count().get_result(&mut *conn).unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn whole_journey_from_form_to_account_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, form) = app.get_html("/register").await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"enctype="multipart/form-data""#));
    assert!(form.contains("novalidate"));
    assert!(form.contains("16 digit, lihat KTP Anda"));
    assert!(form.contains("NPWP (tidak wajib)"));
    // Details first: no password on the sign-up form.
    assert!(!form.contains(r#"type="password""#));

    let mut siti = Registration::default();
    let response = app.register(&mut siti).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/register/check-email");

    let (status, page) = app.get_html("/register/check-email").await;
    assert_eq!(status, 200);
    // The whole address as typed: a typo must be visible.
    assert!(
        page.contains(r#"<strong class="address">siti.aminah@example.co.id</strong>"#),
        "{page}"
    );
    assert!(!page.contains("Apakah maksud Anda"));
    assert!(page.contains("48 jam"));
    assert!(page.contains(r#"action="/verify/resend""#));

    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let mail = &mails[0];
    assert_eq!(mail.authorization, "Bearer test-mail-key");
    assert_eq!(mail.from, "noreply@e-meterai.local");
    assert_eq!(mail.subject, "Verifikasi email akun e-Meterai Anda");
    assert!(mail.text.contains("Yth. Bapak/Ibu Siti Aminah"));
    assert!(mail.text.contains("membuat kata sandi"));
    assert!(mail.text.contains("http://portal.test/verify?token="));
    assert!(
        mail.html
            .contains(r#"<a href="http://portal.test/verify?token="#)
    );

    // Nothing to sign in with yet: no account until the password is chosen.
    assert_eq!(count_accounts(&app), 0);
    assert_eq!(count_registrations(&app), 1);

    // The link shows whose registration it is and asks for the password.
    let link = verification_path(mail);
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Buat kata sandi"), "{html}");
    assert!(html.contains("Siti Aminah"));
    assert!(html.contains("si***@example.co.id"));
    assert!(
        !html.contains("3578015708950001"),
        "full NIK on the link page"
    );
    assert!(
        html.contains(r#"href="/register""#),
        "not my details -> register again"
    );
    // Opened in another browser (the citizen's phone mail app): it works there.
    let response = app
        .choose_password(&link, &siti.password, &siti.password)
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account?welcome=1");
    let (status, html) = app.get_html("/account?welcome=1").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("alamat email Anda sudah terverifikasi"),
        "{html}"
    );
    assert_eq!(count_accounts(&app), 1);
    // Opening the link again says it is done, with the way to sign in.
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Email sudah diverifikasi"), "{html}");
    assert!(html.contains(r#"href="/login""#));

    // Case and spaces do not matter for the address.
    let response = app
        .login("  SITI.Aminah@Example.co.id ", &siti.password)
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/account");
    let (status, html) = app.get_html("/account").await;
    assert_eq!(status, 200);
    assert!(html.contains("Siti Aminah"));
    // Masked at first sight (a shared screen), whole on "show": the owner
    // sees their own data (UU 27/2022), behind their session only.
    assert!(html.contains("3578********0001"));
    assert!(
        html.contains("</summary>3578015708950001</details>"),
        "the owner's own NIK on request"
    );
    assert!(html.contains("siti.aminah@example.co.id"));
    assert!(html.contains("+62 812-3456-7890"));

    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let response = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let response = app.get("/account").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
}

async fn wrong_sign_in_says_the_same_for_unknown_email_and_wrong_password(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    for (email, password) in [
        ("siti.aminah@example.co.id", "bukan kata sandinya"),
        ("tidak.ada@example.co.id", "kopi tubruk pagi hari"),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        assert!(
            html.contains("Alamat email atau kata sandi tidak cocok"),
            "{html}"
        );
        assert!(html.contains(&format!(r#"value="{email}""#)), "email kept");
        assert!(!html.contains(password), "password echoed");
    }
}

/// Each rule gives its own message beside its field and in the summary,
/// with status 422 and every value kept except the passwords.
/// An empty field on the sign-in form is named as such, and is neither a
/// guess nor a failure-log row.
async fn empty_sign_in_fields_are_named(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.login("", "apa saja").await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(r##"<a href="#email">Masukkan alamat email Anda</a>"##),
        "{html}"
    );
    let response = app.login("siti@example.co.id", "").await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(r##"<a href="#password">Masukkan kata sandi</a>"##),
        "{html}"
    );
    assert!(html.contains(r#"value="siti@example.co.id""#), "{html}");
    assert!(reference_code(&html).is_none(), "{html}");
}

async fn each_validation_rule_returns_the_form_with_values_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    type Change = fn(&mut Registration);
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "full_name",
            |r| r.full_name = " ".into(),
            "Masukkan nama lengkap Anda",
        ),
        ("nik", |r| r.nik = "".into(), "Masukkan NIK Anda"),
        (
            "nik",
            |r| r.nik = "35780157089500".into(),
            "NIK harus 16 digit",
        ),
        (
            "nik",
            |r| r.nik = "357801570895000A".into(),
            "NIK hanya boleh berisi angka",
        ),
        (
            "nik",
            |r| r.nik = "9978015708950001".into(),
            "Periksa kembali dua angka pertama NIK",
        ),
        (
            "nik",
            |r| r.nik = "3578017208950001".into(),
            "Periksa kembali angka ke-7 sampai ke-12 NIK",
        ),
        (
            "nik",
            |r| r.nik = "3578015708950000".into(),
            "Empat digit terakhir NIK tidak boleh 0000",
        ),
        (
            "birth_date",
            |r| r.birth_date = "1995-08-18".into(),
            "Tanggal lahir tidak sesuai dengan NIK",
        ),
        (
            "birth_date",
            |r| r.birth_date = "1995-02-30".into(),
            "Tulis tanggal lahir seperti pada KTP",
        ),
        (
            "email",
            |r| r.email = "siti.example.co.id".into(),
            "Masukkan alamat email dengan format yang benar",
        ),
        (
            "phone",
            |r| r.phone = "021 555 1234".into(),
            "Masukkan nomor ponsel Indonesia",
        ),
        (
            "npwp",
            |r| r.npwp = "01.312.166.1-091.000".into(),
            "Nomor NPWP ini tidak valid",
        ),
        ("ktp_photo", |r| r.photo = None, "Pilih foto KTP Anda"),
        (
            "ktp_photo",
            |r| r.photo = Some(("ktp.jpg".into(), b"just some text pretending".to_vec())),
            "harus berupa berkas JPG, PNG, WebP, atau BMP",
        ),
        (
            "ktp_photo",
            |r| r.photo = Some(("ktp.jpg".into(), fake_jpeg(40_000))),
            "tidak dapat dibuka sebagai gambar",
        ),
        (
            "ktp_photo",
            |r| r.photo = Some(("besar.jpg".into(), fake_jpeg(16 * 1024 * 1024))),
            "lebih dari 15 MB",
        ),
        (
            "agree_terms",
            |r| r.agree_terms = false,
            "Centang kotak persetujuan",
        ),
    ];
    for (field, change, message) in cases {
        let mut input = Registration::default();
        change(&mut input);
        let response = app.register(&mut input).await;
        assert_eq!(response.status(), 422, "{field}: {message}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<title>Kesalahan: "), "{field}: title prefix");
        assert!(html.contains("Ada masalah"), "{field}: summary");
        assert!(
            html.contains(&format!(r##"<a href="#{field}">"##)),
            "{field}: summary link"
        );
        assert!(
            html.contains(message),
            "{field}: expected {message:?} in\n{html}"
        );
        assert!(
            html.contains(&format!(r#"id="{field}-error""#)),
            "{field}: message beside field"
        );
        // Values kept, passwords never.
        if field != "full_name" {
            assert!(
                html.contains(r#"value="Siti Aminah""#),
                "{field}: name kept"
            );
        }
        if field != "phone" {
            assert!(
                html.contains(r#"value="0812-3456-7890""#),
                "{field}: phone kept"
            );
        }
        assert!(!html.contains("kopi tubruk"), "{field}: password echoed");
    }
    assert_eq!(count_registrations(&app), 0);
}

/// A registration whose NIK ends in 0000 comes back (422) with its photo
/// kept as a draft: the input, the page, and the draft upload's id.
async fn came_back_with_photo(app: &TestApp) -> (Registration, String, String) {
    let mut input = Registration {
        nik: "3578015708950000".into(),
        ..Default::default()
    };
    let response = app.register(&mut input).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    let upload = attr_after(&html, r#"name="ktp_upload_id""#, "value").expect("draft upload id");
    (input, html, upload)
}

async fn photo_is_kept_with_the_draft(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (mut input, html, upload) = came_back_with_photo(&app).await;
    assert!(html.contains("Foto KTP sudah diterima:"), "{html}");
    assert!(
        html.contains("<strong>ktp-siti.jpg</strong>, ") && html.contains(" KB."),
        "{html}"
    );
    // The same submission id comes back.
    assert_eq!(
        attr_after(&html, r#"name="submission_id""#, "value").unwrap(),
        input.submission_id
    );

    // Corrected NIK, no new file: the draft's photo is used.
    input.nik = "3578015708950001".into();
    input.photo = None;
    input.ktp_upload_id = Some(upload);
    input.csrf_token = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let response = app.post_register(&input).await;
    assert_eq!(response.status(), 303);
    assert_eq!(count_registrations(&app), 1);
}

/// The language switch on a form that came back shows the same form, with
/// the answers, the photo and the mistakes, in the other language.
async fn switching_language_keeps_the_form_that_came_back(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (mut input, html, upload) = came_back_with_photo(&app).await;
    // The switch in the header is a plain link.
    assert!(html.contains(r#"href="/register?lang=en""#), "{html}");

    let (status, english) = app.get_html("/register?lang=en").await;
    assert_eq!(status, 200);
    assert!(english.contains(r#"<html lang="en">"#));
    assert!(english.contains(r#"value="Siti Aminah""#), "{english}");
    assert!(english.contains(r#"value="3578015708950000""#), "{english}");
    assert!(
        english.contains("The last 4 digits of the NIK cannot be 0000"),
        "{english}"
    );
    assert!(english.contains("<title>Error: "), "{english}");
    assert!(english.contains("KTP photo received:"), "{english}");
    assert_eq!(
        attr_after(&english, r#"name="ktp_upload_id""#, "value").as_deref(),
        Some(upload.as_str())
    );
    assert_eq!(
        attr_after(&english, r#"name="submission_id""#, "value").unwrap(),
        input.submission_id
    );

    // Back to Indonesian, then the corrected form is accepted with the photo.
    let (_, indonesian) = app.get_html("/register?lang=id").await;
    assert!(indonesian.contains("Empat digit terakhir NIK tidak boleh 0000"));
    input.nik = "3578015708950001".into();
    input.photo = None;
    input.ktp_upload_id = Some(upload);
    input.csrf_token = attr_after(&indonesian, r#"name="csrf_token""#, "value").unwrap();
    assert_eq!(app.post_register(&input).await.status(), 303);
    assert_eq!(count_registrations(&app), 1);

    // Once sent, the draft is gone: a new form is empty.
    let (_, fresh) = app.get_html("/register?lang=en").await;
    assert!(!fresh.contains("Siti Aminah"), "{fresh}");
    assert!(!fresh.contains("<title>Error: "), "{fresh}");
}

async fn email_registered_in_any_case_is_a_409(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    let mut again = Registration {
        email: "  SITI.AMINAH@Example.CO.ID ".into(),
        ..Registration::budi()
    };
    let response = app.register(&mut again).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    assert!(html.contains("Alamat email ini sudah terdaftar"), "{html}");
    assert!(html.contains(r#"href="/login""#));
    assert!(html.contains("1500 159"));
    assert_eq!(count_accounts(&app), 1);
}

async fn nik_registered_is_a_409(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    let mut again = Registration {
        email: "orang.lain@example.com".into(),
        nik: "3578-0157-0895-0001".into(),
        ..Default::default()
    };
    let response = app.register(&mut again).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    assert!(html.contains("NIK ini sudah terdaftar"), "{html}");
    assert_eq!(count_accounts(&app), 1);
}

/// The connection dropped after the first POST succeeded: the retry (same
/// form, same submission_id) gets the same answer, never "already used".
async fn same_submission_posted_twice_gets_the_same_outcome(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut input = Registration::default();
    let first = app.register(&mut input).await;
    assert_eq!(first.status(), 303);
    // Another browser session even (the first answer's cookie was lost).
    let other = app.new_browser();
    let page = other
        .get(app.url("/register"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    input.csrf_token = attr_after(&page, r#"name="csrf_token""#, "value").unwrap();
    let second = other
        .post(app.url("/register"))
        .multipart(input.to_form())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 303);
    assert_eq!(location(&second), "/register/check-email");
    let check = other
        .get(app.url("/register/check-email"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(check.contains("siti.aminah@example.co.id"));
    assert_eq!(count_registrations(&app), 1);
    app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let mut conn = app.state.pool.get().unwrap();
    let mails: i64 = mail_outbox::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(mails, 1, "one mail for one account");
}

/// Two submissions of one email at the same moment make one account.
async fn concurrent_submissions_make_one_account(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A double click: the same submission twice at once.
    let mut input = Registration::default();
    let (csrf, submission) = app.open_register_form().await;
    input.csrf_token = csrf;
    input.submission_id = submission;
    let (a, b) =
        futures_util::future::join(app.post_register(&input), app.post_register(&input)).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    assert_eq!(location(&a), "/register/check-email");
    assert_eq!(location(&b), "/register/check-email");
    assert_eq!(count_registrations(&app), 1);

    // Two tabs: two different forms with another email, at once.
    let mut one = Registration::budi();
    let mut two = Registration::budi();
    let (csrf, first) = app.open_register_form().await;
    let (_, second) = app.open_register_form().await;
    assert_ne!(first, second);
    one.csrf_token = csrf.clone();
    one.submission_id = first;
    two.csrf_token = csrf;
    two.submission_id = second;
    let (a, b) = futures_util::future::join(app.post_register(&one), app.post_register(&two)).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    // One stores, the other replaces its data (same address): one
    // registration per address, nobody blocked.
    let mut places = [location(&a), location(&b)];
    places.sort();
    assert_eq!(places[0], "/register/check-email", "{places:?}");
    assert!(
        places[1].starts_with("/register/check-email?notice="),
        "{places:?}"
    );
    assert_eq!(count_registrations(&app), 2);
}

async fn mail_provider_failure_then_recovery_delivers_the_mail(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.mail.plan(&[500]);
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303, "the sign-up does not wait for mail");
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(app.mail.attempts(), 2);
    // The provider has it; the outbox notes it right after (poll a moment:
    // the stub answers before the worker writes what became of the try).
    let mut conn = app.state.pool.get().unwrap();
    let mut row: (String, String, i32, String) = Default::default();
    for _ in 0..100 {
        row = mail_outbox::table
            .select((
                mail_outbox::id,
                mail_outbox::status,
                mail_outbox::attempts,
                mail_outbox::text_body,
            ))
            .first(&mut *conn)
            .unwrap();
        if row.1 == "sent" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (id, status, attempts, body) = row;
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    // The provider can drop a copy sent again: the key is the outbox id.
    assert_eq!(mails[0].idempotency_key, id);
    assert!(body.is_empty(), "a sent mail's link is not kept");
    // The link in the mail that finally arrived works.
    drop(conn);
    let (status, html) = app.get_html(&verification_path(&mails[0])).await;
    assert_eq!(status, 200);
    assert!(html.contains("Buat kata sandi"));
}

async fn mail_is_marked_failed_after_its_last_try(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.mail_max_attempts = 2).await else {
        return;
    };
    app.mail.plan(&[503, 503]);
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303);
    for _ in 0..200 {
        let status: String = {
            let mut conn = app.state.pool.get().unwrap();
            mail_outbox::table
                .select(mail_outbox::status)
                .first(&mut *conn)
                .unwrap()
        };
        if status == "failed" {
            assert_eq!(app.mail.attempts(), 2);
            assert_eq!(count_registrations(&app), 1, "the sign-up is kept");
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mail never marked failed");
}

fn age_tokens(app: &TestApp, hours: i64) {
    let mut conn = app.state.pool.get().unwrap();
    let past = app.state.clock.now() - chrono::Duration::hours(hours);
    diesel::update(registration_tokens::table)
        .set(registration_tokens::expires_at.eq(past))
        .execute(&mut *conn)
        .unwrap();
}

async fn resend(app: &TestApp, email: &str) -> reqwest::Response {
    let csrf = app.csrf_from("/register/check-email").await;
    app.client
        .post(app.url("/verify/resend"))
        .form(&[("csrf_token", csrf.as_str()), ("email", email)])
        .send()
        .await
        .unwrap()
}

async fn expired_link_explains_and_offers_a_new_one(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 0).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    age_tokens(&app, 1);
    let (status, html) = app.get_html(&verification_path(&mails[0])).await;
    assert_eq!(status, 410);
    assert!(
        html.contains("Tautan verifikasi sudah kedaluwarsa"),
        "{html}"
    );
    assert!(html.contains("si***@example.co.id"));
    // The resend form on that page sends a new, working link.
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let email = attr_after(&html, r#"name="email""#, "value").unwrap();
    let response = app
        .client
        .post(app.url("/verify/resend"))
        .form(&[("csrf_token", csrf), ("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    let response = app
        .choose_password(
            &verification_path(&mails[1]),
            "kopi tubruk pagi hari",
            "kopi tubruk pagi hari",
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(count_accounts(&app), 1);
}

/// Slow mailboxes deliver the first mail last: every unexpired link of the
/// address works until the password is chosen.
async fn every_link_sent_works_until_the_password_is_chosen(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 0).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let first = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let response = resend(&app, "siti.aminah@example.co.id").await;
    assert_eq!(location(&response), "/register/check-email?notice=sent");
    let (_, html) = app.get_html(&location(&response)).await;
    assert!(html.contains("Kami sudah mengirim tautan baru"), "{html}");
    let second = app.wait_for_mail("siti.aminah@example.co.id", 2).await[1].clone();
    for mail in [&second, &first] {
        let (status, html) = app.get_html(&verification_path(mail)).await;
        assert_eq!(status, 200);
        assert!(html.contains("Buat kata sandi"), "{html}");
    }
    // The older link, in another browser, chooses the password.
    let other = app.new_browser();
    let response = app
        .choose_password_in(
            &other,
            &verification_path(&first),
            "kopi tubruk pagi hari",
            "kopi tubruk pagi hari",
        )
        .await;
    assert_eq!(response.status(), 303);
    // Now both only say it is done.
    let (status, html) = app.get_html(&verification_path(&second)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Email sudah diverifikasi"), "{html}");
    // And the password works.
    assert_eq!(
        app.login("siti.aminah@example.co.id", "kopi tubruk pagi hari")
            .await
            .status(),
        303
    );
}

/// Mail scanners open links with HEAD and GET (and their own user agents):
/// none of that verifies anything.
async fn scanners_opening_the_link_change_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let url = app.url(&verification_path(&mail));
    let scanner = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (compatible; Microsoft Office SafeLinks)")
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(scanner.head(&url).send().await.unwrap().status(), 200);
        assert_eq!(scanner.get(&url).send().await.unwrap().status(), 200);
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        count_accounts(&app),
        0,
        "no account made by opening the link"
    );
    let mut conn = app.state.pool.get().unwrap();
    let (completed, opened): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) =
        registrations::table
            .select((registrations::completed_at, registrations::link_opened_at))
            .first(&mut *conn)
            .unwrap();
    assert!(completed.is_none());
    assert!(opened.is_some(), "the opening is noted for staff");
    drop(conn);
    // The citizen still chooses the password after the scanners.
    let response = app
        .choose_password(
            &verification_path(&mail),
            "kopi tubruk pagi hari",
            "kopi tubruk pagi hari",
        )
        .await;
    assert_eq!(response.status(), 303);
}

/// Two tabs post the password at the same moment: one account.
async fn two_tabs_choosing_the_password_at_once_make_one_account(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let (_, html) = app.get_html(&verification_path(&mail)).await;
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    let token = attr_after(&html, r#"name="token""#, "value").unwrap();
    let post = |password: &'static str| {
        app.client
            .post(app.url("/verify"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("token", token.as_str()),
                ("password", password),
                ("password_confirm", password),
            ])
            .send()
    };
    let (a, b) =
        futures_util::future::join(post("kopi tubruk pagi hari"), post("teh manis sore hari"))
            .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 303],
        "one makes the account, the other is told it is done"
    );
    assert_eq!(count_accounts(&app), 1);
}

/// Password rules on the link page: 422 with the message beside the field.
async fn password_rules_on_the_link_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let link = verification_path(&mail);
    for (password, confirm, message) in [
        ("", "", "Masukkan kata sandi"),
        ("pendek", "pendek", "paling sedikit 8 karakter"),
        ("          ", "          ", "tidak boleh hanya berisi spasi"),
        (
            "Siti Aminah",
            "Siti Aminah",
            "tidak boleh sama dengan nama Anda",
        ),
        ("password123", "password123", "terlalu umum"),
        (
            "kopi tubruk pagi hari",
            "kopi tubruk sore",
            "Kata sandi yang Anda ketik ulang berbeda",
        ),
    ] {
        let response = app.choose_password(&link, password, confirm).await;
        assert_eq!(response.status(), 422, "{message}");
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "{message}: {html}");
        assert!(html.contains("Ada masalah"));
        assert!(!html.contains("kopi tubruk"), "password echoed");
    }
    assert_eq!(count_accounts(&app), 0);
}

async fn unknown_or_mangled_link_is_explained(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/verify?token=abc",
        &format!("/verify?token={}", "a".repeat(64)),
        "/verify",
    ] {
        let (status, html) = app.get_html(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Tautan verifikasi tidak dikenali"), "{path}");
        assert!(html.contains(r#"action="/verify/resend""#));
    }
}

async fn resend_has_a_cooldown_and_reveals_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    // Another browser: the same answer for a waiting registration and an
    // unknown address.
    let other = app.new_browser();
    let mut answers = Vec::new();
    for email in ["siti.aminah@example.co.id", "nobody@example.com"] {
        let csrf = csrf_of(&other, app.url("/register/check-email")).await;
        let response = other
            .post(app.url("/verify/resend"))
            .form(&[("csrf_token", csrf.as_str()), ("email", email)])
            .send()
            .await
            .unwrap();
        answers.push((response.status(), location(&response)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].1, "/register/check-email?notice=resent");
    // The browser that registered the address is told the truth: held back.
    let response = resend(&app, "siti.aminah@example.co.id").await;
    assert_eq!(location(&response), "/register/check-email?notice=cooldown");
    let (_, html) = app.get_html(&location(&response)).await;
    assert!(html.contains("Tautan terakhir baru saja dikirim"), "{html}");
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Within the cooldown: no second mail.
    assert_eq!(app.mail.accepted().len(), 1);
    let mut conn = app.state.pool.get().unwrap();
    let tokens: i64 = registration_tokens::table
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(tokens, 1);
}

/// The owner registers the waiting address again with corrected details:
/// the newest data replace the older, and every link shows them.
async fn registering_a_waiting_email_again_keeps_the_newest_data(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.resend_cooldown_secs = 0).await else {
        return;
    };
    let mut first = Registration {
        full_name: "Siti Aminh".into(),
        ..Default::default()
    };
    app.register(&mut first).await;
    let old_mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let response = app.register(&mut Registration::default()).await;
    assert_eq!(response.status(), 303);
    let place = location(&response);
    assert_eq!(place, "/register/check-email?notice=replaced");
    let (_, html) = app.get_html(&place).await;
    assert!(
        html.contains("Data terbaru Anda sudah menggantikan"),
        "{html}"
    );
    let new_mail = app.wait_for_mail("siti.aminah@example.co.id", 2).await[1].clone();
    assert_eq!(count_registrations(&app), 1);
    for mail in [&old_mail, &new_mail] {
        let (_, html) = app.get_html(&verification_path(mail)).await;
        assert!(html.contains("Siti Aminah"), "{html}");
        assert!(!html.contains("Siti Aminh"));
    }
}

/// A waiting NIK blocks nobody: the same NIK under another (corrected)
/// address is accepted; the first to choose a password owns the NIK, and
/// the other link explains what happened with a reference code.
async fn a_waiting_nik_does_not_block_and_the_first_to_finish_owns_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut typo = Registration {
        email: "siti.aminah@exmaple.co.id".into(),
        ..Default::default()
    };
    assert_eq!(app.register(&mut typo).await.status(), 303);
    assert_eq!(
        app.register(&mut Registration::default()).await.status(),
        303
    );
    assert_eq!(count_registrations(&app), 2);
    let typo_mail = app.wait_for_mail("siti.aminah@exmaple.co.id", 1).await[0].clone();
    let good_mail = app.wait_for_mail("siti.aminah@example.co.id", 1).await[0].clone();
    let response = app
        .choose_password(
            &verification_path(&good_mail),
            "kopi tubruk pagi hari",
            "kopi tubruk pagi hari",
        )
        .await;
    assert_eq!(response.status(), 303);
    let (status, html) = app.get_html(&verification_path(&typo_mail)).await;
    assert_eq!(status, 409);
    assert!(html.contains("NIK ini sudah dipakai akun lain"), "{html}");
    assert!(
        crate::helpers::reference_code(&html)
            .unwrap()
            .starts_with("VER-")
    );
    assert!(html.contains("1500 159"));
    // Once verified, the NIK makes the 409 page for new sign-ups.
    let mut again = Registration {
        email: "lagi@example.com".into(),
        ..Default::default()
    };
    assert_eq!(app.register(&mut again).await.status(), 409);
    let mut conn = app.state.pool.get().unwrap();
    let account =
        emeterai::db::accounts::find_by_nik(&mut conn, &app.state.keys, "3578015708950001")
            .unwrap()
            .unwrap();
    assert_eq!(account.email, "siti.aminah@example.co.id");
}

async fn stale_form_comes_back_with_values(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut input = Registration::default();
    let (_, submission) = app.open_register_form().await;
    input.submission_id = submission;
    input.csrf_token = "0".repeat(64);
    let response = app.post_register(&input).await;
    assert_eq!(response.status(), 403);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Halaman ini sudah terlalu lama terbuka"),
        "{html}"
    );
    assert!(html.contains(r#"value="Siti Aminah""#));
    // Nothing is stored for a post that failed the CSRF check, not even
    // the photo: the citizen sends it again with the returned form.
    assert!(!html.contains(r#"name="ktp_upload_id""#), "photo stored");
    assert_eq!(count_registrations(&app), 0);
    {
        let mut conn = app.state.pool.get().unwrap();
        let uploads: i64 = emeterai::schema::ktp_uploads::table
            .count()
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(uploads, 0);
    }
    // The returned form, with its fresh token, goes through.
    input.csrf_token = attr_after(&html, r#"name="csrf_token""#, "value").unwrap();
    assert_eq!(app.post_register(&input).await.status(), 303);
}

async fn unverified_accounts_expire_and_free_their_email_and_nik(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    app.register_and_verify(&mut Registration::budi()).await;
    // Six days on nothing is purged; eight days on (the lifetime is 7).
    app.state.clock.advance(chrono::Duration::days(6));
    let (purged, _) =
        emeterai::services::retention::purge_expired(&app.state.services(), app.state.clock.now())
            .await
            .unwrap();
    assert_eq!(purged, 0, "both still within their lifetime");
    app.state.clock.advance(chrono::Duration::days(2));
    let (purged, _) =
        emeterai::services::retention::purge_expired(&app.state.services(), app.state.clock.now())
            .await
            .unwrap();
    assert_eq!(purged, 2, "the waiting registration and the finished one");
    assert_eq!(count_accounts(&app), 1, "the account stays");
    assert_eq!(count_registrations(&app), 0);
    let response = app
        .register(&mut Registration {
            full_name: "Siti A.".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/register/check-email");
}

async fn forms_refuse_posts_without_the_csrf_token(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register_and_verify(&mut Registration::default()).await;
    let browser = app.new_browser();
    let response = browser
        .post(app.url("/login"))
        .form(&[
            ("email", "siti.aminah@example.co.id"),
            ("password", "kopi tubruk pagi hari"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let account = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 303, "not signed in");
}

/// A common provider's domain mistyped: the check-email page shows the
/// address in full and asks "did you mean ...?".
async fn a_mistyped_mail_domain_gets_a_suggestion(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut budi = Registration {
        email: "budi.santoso@gmail.con".into(),
        ..Default::default()
    };
    assert_eq!(app.register(&mut budi).await.status(), 303);
    let (_, page) = app.get_html("/register/check-email").await;
    assert!(page.contains("budi.santoso@gmail.con</strong>"), "{page}");
    assert!(
        page.contains("Apakah maksud Anda <strong>budi.santoso@gmail.com</strong>?"),
        "{page}"
    );
}

on_both_backends!(
    a_mistyped_mail_domain_gets_a_suggestion,
    whole_journey_from_form_to_account_page,
    wrong_sign_in_says_the_same_for_unknown_email_and_wrong_password,
    each_validation_rule_returns_the_form_with_values_kept,
    photo_is_kept_with_the_draft,
    empty_sign_in_fields_are_named,
    switching_language_keeps_the_form_that_came_back,
    email_registered_in_any_case_is_a_409,
    nik_registered_is_a_409,
    same_submission_posted_twice_gets_the_same_outcome,
    concurrent_submissions_make_one_account,
    mail_provider_failure_then_recovery_delivers_the_mail,
    mail_is_marked_failed_after_its_last_try,
    expired_link_explains_and_offers_a_new_one,
    every_link_sent_works_until_the_password_is_chosen,
    scanners_opening_the_link_change_nothing,
    two_tabs_choosing_the_password_at_once_make_one_account,
    password_rules_on_the_link_page,
    unknown_or_mangled_link_is_explained,
    resend_has_a_cooldown_and_reveals_nothing,
    registering_a_waiting_email_again_keeps_the_newest_data,
    a_waiting_nik_does_not_block_and_the_first_to_finish_owns_it,
    stale_form_comes_back_with_values,
    unverified_accounts_expire_and_free_their_email_and_nik,
    forms_refuse_posts_without_the_csrf_token,
);
