//! "Someone else used my NIK", tracked as a case: the whole path as the
//! citizen, the holder of the NIK and a staff member take it, on both
//! backends, through the running portal and the mail provider stub.

use diesel::prelude::*;

use crate::helpers::{Backend, Registration, TestApp, attr_after, html_of, ktp_jpeg, noisy_jpeg};
use crate::mail_stub::SentMail;
use crate::on_both_backends;

const SITI_NIK: &str = "3578 0157 0895 0001";

/// The path of the case status link in a mail.
fn status_path(mail: &SentMail) -> String {
    let start = mail
        .text
        .find("/report/status?token=")
        .expect("a status link in the mail");
    mail.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn photo_part(data: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(data)
        .file_name(name.to_string())
        .mime_str("image/jpeg")
        .unwrap()
}

/// Sends the report form from `browser` (its CSRF token read from
/// `/report`): the response.
async fn report(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    ktp: Option<Vec<u8>>,
    selfie: Option<Vec<u8>>,
) -> reqwest::Response {
    let csrf = crate::helpers::csrf_of(browser, app.url("/report")).await;
    let mut form = reqwest::multipart::Form::new()
        .text("csrf_token", csrf)
        .text("nik", SITI_NIK)
        .text("email", email.to_string())
        .text("phone", "0813-1111-2222")
        .text(
            "statement",
            "Saya belum pernah mendaftar, tetapi NIK saya sudah dipakai.",
        );
    if let Some(ktp) = ktp {
        form = form.part("ktp_photo", photo_part(ktp, "ktp.jpg"));
    }
    if let Some(selfie) = selfie {
        form = form.part("selfie", photo_part(selfie, "selfie.jpg"));
    }
    browser
        .post(app.url("/report"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The case reference on a page (`KSS-....-....`).
fn case_reference(html: &str) -> Option<String> {
    let start = html.find("KSS-")?;
    Some(html[start..start + 13].to_string())
}

async fn staff_post(
    app: &TestApp,
    staff: &reqwest::Client,
    reference: &str,
    action: &str,
    message: &str,
) -> String {
    let path = format!("/staff/cases/{reference}");
    let csrf = crate::helpers::csrf_of(staff, app.url(&path)).await;
    let response = staff
        .post(app.url(&format!("{path}/{action}")))
        .form(&[("csrf_token", csrf.as_str()), ("message", message)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    staff
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn reply(app: &TestApp, browser: &reqwest::Client, path: &str, message: &str) -> u16 {
    let html = browser
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = attr_after(&html, r#"name="csrf_token""#, "value").expect("a reply form");
    let token = attr_after(&html, r#"name="token""#, "value").unwrap();
    browser
        .post(app.url("/report/reply"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", token.as_str()),
            ("message", message),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_stolen_nik_is_reported_reviewed_released_and_registered(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Someone registers Siti's NIK under their own address, and signs in.
    let mut impostor = Registration {
        full_name: "Orang Lain".into(),
        email: "orang.lain@example.net".into(),
        ..Registration::default()
    };
    let impostor_browser = app.new_browser();
    let response = app.register_in(&impostor_browser, &mut impostor).await;
    assert_eq!(response.status(), 303);
    let mails = app.wait_for_mail("orang.lain@example.net", 1).await;
    let link = crate::mail_stub::verification_path(&mails[0]);
    let response = app
        .choose_password_in(
            &impostor_browser,
            &link,
            &impostor.password,
            &impostor.password,
        )
        .await;
    assert_eq!(response.status(), 303);
    let (status, _) = (
        impostor_browser
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert_eq!(status, 200, "the impostor is signed in");

    // Siti meets the 409 page: it offers the online report.
    let mut siti = Registration::default();
    let response = app.register(&mut siti).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"href="/report""#), "{html}");
    let (status, form) = app.get_html("/report").await;
    assert_eq!(status, 200);
    assert!(
        form.contains(r#"value="3578015708950001""#),
        "the NIK she was just told about is filled in: {form}"
    );

    // She reports, with her KTP and a selfie.
    let response = report(
        &app,
        &app.client,
        "siti.aminah@example.co.id",
        Some(ktp_jpeg()),
        Some(noisy_jpeg(7)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let reference = case_reference(&html).expect("a case reference on the page");
    assert!(html.contains("/report/status?token="), "{html}");
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    assert!(mails[0].subject.contains("Laporan NIK Anda kami terima"));
    assert!(mails[0].text.contains(&reference));
    let siti_status = status_path(&mails[0]);

    // Her sister reports the same NIK from another browser: it joins the case.
    let sister = app.new_browser();
    let response = report(
        &app,
        &sister,
        "adik.siti@example.net",
        Some(ktp_jpeg()),
        Some(noisy_jpeg(8)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert_eq!(case_reference(&html).as_deref(), Some(reference.as_str()));
    assert!(html.contains("digabungkan"), "{html}");
    {
        let mut conn = app.state.pool.get().unwrap();
        let cases: i64 = emeterai::schema::nik_cases::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(cases, 1);
        let photos: i64 = emeterai::schema::nik_case_photos::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(photos, 4);
    }

    // Staff: the queue, the case with both reports and the holder's account.
    let staff = crate::staff::signed_in_staff(&app).await;
    let queue = staff
        .get(app.url("/staff/cases"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(queue.contains(&reference), "{queue}");
    let page = staff_post(&app, &staff, &reference, "assign", "").await;
    assert!(page.contains("petugas@peruri.test"), "assigned: {page}");
    assert!(page.contains("Sedang diperiksa"), "{page}");
    assert!(page.contains("adik.siti@example.net"));
    assert!(page.contains(&emeterai::domain::email_mask("orang.lain@example.net")));
    let photo_ids: Vec<String> = page
        .match_indices(&format!("/staff/cases/{reference}/photo/"))
        .map(|(i, m)| page[i + m.len()..].split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(photo_ids.len(), 5, "four report photos and the holder's");
    for id in &photo_ids {
        let photo = staff
            .get(app.url(&format!("/staff/cases/{reference}/photo/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(photo.status(), 200);
        assert_eq!(photo.headers()["content-type"], "image/jpeg");
        let bytes = photo.bytes().await.unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    }
    // Nobody else opens them.
    let outsider = app.new_browser();
    let photo = outsider
        .get(app.url(&format!("/staff/cases/{reference}/photo/{}", photo_ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 403);
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    assert!(
        mails[1].subject.contains("sedang diperiksa"),
        "{}",
        mails[1].subject
    );

    // Staff ask for something; Siti reads it on her status page and answers.
    let page = staff_post(
        &app,
        &staff,
        &reference,
        "ask",
        "Mohon kirim foto KTP yang lebih terang.",
    )
    .await;
    assert!(page.contains("Menunggu keterangan"), "{page}");
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 3).await;
    assert!(
        mails[2]
            .text
            .contains("Mohon kirim foto KTP yang lebih terang.")
    );
    let siti_browser = app.new_browser();
    let (status, html) = {
        let r = siti_browser
            .get(app.url(&siti_status))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(
        html.contains("Mohon kirim foto KTP yang lebih terang."),
        "{html}"
    );
    assert!(!html.contains("adik.siti"), "nothing of the other reporter");
    assert!(!html.contains("petugas@peruri.test"), "staff stay unnamed");
    assert_eq!(
        reply(
            &app,
            &siti_browser,
            &siti_status,
            "Foto sudah saya ambil lagi di tempat terang."
        )
        .await,
        303
    );
    let page = staff
        .get(app.url(&format!("/staff/cases/{reference}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Foto sudah saya ambil lagi"), "{page}");
    assert!(page.contains("Sedang diperiksa"), "back in review");

    // Released: the impostor's account is suspended and told how to object.
    let page = staff_post(
        &app,
        &staff,
        &reference,
        "release",
        "KTP dan foto diri pelapor cocok dengan NIK.",
    )
    .await;
    assert!(page.contains("Selesai: NIK dilepaskan"), "{page}");
    let mails = app.wait_for_mail("orang.lain@example.net", 2).await;
    let holder_mail = mails.last().unwrap();
    assert!(
        holder_mail.subject.contains("ditangguhkan"),
        "{}",
        holder_mail.subject
    );
    assert!(
        holder_mail
            .text
            .contains("KTP dan foto diri pelapor cocok dengan NIK.")
    );
    let holder_status = status_path(holder_mail);
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 4).await;
    assert!(mails[3].subject.contains("sudah dapat didaftarkan"));
    app.wait_for_mail("adik.siti@example.net", 4).await;
    let account = impostor_browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 303, "the impostor's session ended");
    let response = {
        let csrf = crate::helpers::csrf_of(&impostor_browser, app.url("/login")).await;
        impostor_browser
            .post(app.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", "orang.lain@example.net"),
                ("password", impostor.password.as_str()),
            ])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(response.status(), 403);
    let html = response.text().await.unwrap();
    assert!(html.contains("Akun ini ditangguhkan"), "{html}");
    assert!(html.contains(&reference));

    // Siti registers her NIK now, and finishes.
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;

    // The holder objects through the mailed link: the case is back in the queue.
    assert_eq!(
        reply(
            &app,
            &impostor_browser,
            &holder_status,
            "Ini NIK saya sendiri."
        )
        .await,
        303
    );
    let queue = staff
        .get(app.url("/staff/cases"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(queue.contains(&reference), "reopened: {queue}");
    let mails = app.wait_for_mail("orang.lain@example.net", 3).await;
    assert!(
        mails[2].subject.contains("Keberatan"),
        "{}",
        mails[2].subject
    );
    // Siti's status page does not show the holder's objection text.
    let html = siti_browser
        .get(app.url(&siti_status))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Ini NIK saya sendiri."), "{html}");
    // Upholding the objection cannot give the NIK back: Siti holds it now.
    let page = staff_post(&app, &staff, &reference, "reinstate", "Keberatan diterima.").await;
    assert!(page.contains("sudah dipakai akun lain"), "{page}");
    // Staff uphold the release again: Siti's new account is not touched.
    let page = staff_post(
        &app,
        &staff,
        &reference,
        "release",
        "Keberatan tidak dapat diterima.",
    )
    .await;
    assert!(page.contains("Selesai: NIK dilepaskan"), "{page}");
    let response = app.login("siti.aminah@example.co.id", &siti.password).await;
    assert_eq!(response.status(), 303, "Siti still signs in");
    let mails = app.wait_for_mail("orang.lain@example.net", 4).await;
    assert!(
        mails[3]
            .subject
            .contains("Keberatan Anda tidak dapat kami terima"),
        "{}",
        mails[3].subject
    );

    // Every step is audited; the report is in the failure log's timeline.
    let audit = staff
        .get(app.url("/staff/audit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for label in [
        "Mengambil kasus",
        "Meminta keterangan pelapor",
        "Melepaskan NIK",
        "Membuka foto kasus",
    ] {
        assert!(audit.contains(label), "{label} in {audit}");
    }
    let failure = staff
        .get(app.url(&format!("/staff/failures/{reference}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        failure.contains(&format!("/staff/cases/{reference}")),
        "{failure}"
    );
}

async fn bad_reports_change_nothing_and_a_rejected_case_says_why(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut holder = Registration {
        email: "pemegang@example.net".into(),
        ..Registration::default()
    };
    app.register_and_verify(&mut holder).await;
    let browser = app.new_browser();

    // A "photo" that is no photo, and a missing selfie: the form comes
    // back with its answers and precise messages; nothing is stored.
    let response = report(
        &app,
        &browser,
        "siti.aminah@example.co.id",
        Some(crate::helpers::fake_jpeg(40_000)),
        Some(ktp_jpeg()),
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(r#"value="siti.aminah@example.co.id""#),
        "{html}"
    );
    assert!(html.contains(r#"id="ktp_photo-error""#), "{html}");
    let response = report(
        &app,
        &browser,
        "siti.aminah@example.co.id",
        Some(ktp_jpeg()),
        None,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Pilih foto diri Anda sambil memegang KTP"),
        "{html}"
    );
    // A form from elsewhere (no CSRF token of this session).
    let response = app
        .new_browser()
        .post(app.url("/report"))
        .multipart(reqwest::multipart::Form::new().text("nik", SITI_NIK))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    {
        let mut conn = app.state.pool.get().unwrap();
        let cases: i64 = emeterai::schema::nik_cases::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(cases, 0);
    }

    // A status link that is not one.
    let (status, html) = app
        .get_html(&format!("/report/status?token={}", "ab".repeat(32)))
        .await;
    assert_eq!(status, 404);
    assert!(html.contains("Tautan kasus tidak dikenal"), "{html}");

    // A real report, rejected with a reason the citizen reads.
    let response = report(
        &app,
        &browser,
        "siti.aminah@example.co.id",
        Some(ktp_jpeg()),
        Some(noisy_jpeg(3)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reference = case_reference(&response.text().await.unwrap()).unwrap();
    let status_link = status_path(&app.wait_for_mail("siti.aminah@example.co.id", 1).await[0]);
    let staff = crate::staff::signed_in_staff(&app).await;
    // A decision without its message changes nothing.
    let page = staff_post(&app, &staff, &reference, "reject", "  ").await;
    assert!(page.contains("Tulis pesan untuk warga"), "{page}");
    assert!(page.contains("Baru, menunggu petugas"), "{page}");
    let page = staff_post(
        &app,
        &staff,
        &reference,
        "reject",
        "Foto KTP tidak cocok dengan foto diri.",
    )
    .await;
    assert!(page.contains("Ditolak"), "{page}");
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 2).await;
    assert!(
        mails[1]
            .text
            .contains("Foto KTP tidak cocok dengan foto diri.")
    );
    let html = browser
        .get(app.url(&status_link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Ditolak"), "{html}");
    assert!(html.contains("Foto KTP tidak cocok dengan foto diri."));
    assert!(
        !html.contains(r#"action="/report/reply""#),
        "a closed case takes no reply"
    );
    // A late decision on a closed case changes nothing.
    let page = staff_post(&app, &staff, &reference, "release", "Terlambat.").await;
    assert!(page.contains("tidak ada yang diubah"), "{page}");
    let account = app
        .state
        .pool
        .get()
        .map(|mut conn| {
            emeterai::db::accounts::find_by_email(
                &mut conn,
                &app.state.keys,
                "pemegang@example.net",
            )
            .unwrap()
            .unwrap()
        })
        .unwrap();
    assert!(
        account.suspended_at.is_none(),
        "the holder keeps the account"
    );

    // A NIK that no account holds needs no report: nothing is stored.
    let other = app.new_browser();
    let csrf = crate::helpers::csrf_of(&other, app.url("/report")).await;
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", csrf)
        .text("nik", "3201011708900003")
        .text("email", "budi@example.net")
        .text("phone", "0813-1111-2222")
        .text("statement", "NIK saya dipakai.")
        .part("ktp_photo", photo_part(ktp_jpeg(), "ktp.jpg"))
        .part("selfie", photo_part(noisy_jpeg(4), "selfie.jpg"));
    let response = other
        .post(app.url("/report"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("NIK ini belum terdaftar")
    );
    let mut conn = app.state.pool.get().unwrap();
    let cases: i64 = emeterai::schema::nik_cases::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(cases, 1);
}

/// Reports are limited per NIK, counted in the database before the photos
/// are decoded: parallel reports on two instances open one case, with no
/// more reports than the limit.
async fn parallel_reports_on_two_instances_open_one_case_within_the_limit(backend: Backend) {
    let configure = |s: &mut emeterai::config::Settings| {
        s.reports_per_day = 2;
        s.secret_key = Some("one secret for every instance of the portal".into());
    };
    let Some(app) = TestApp::spawn_with(backend, configure).await else {
        return;
    };
    let other = TestApp::spawn_on(app.db.share(), configure).await.unwrap();
    let mut holder = Registration {
        email: "pemegang@example.net".into(),
        ..Registration::default()
    };
    app.register_and_verify(&mut holder).await;
    let photo = noisy_jpeg(5);
    let mut sends = Vec::new();
    for i in 0..6 {
        let instance = if i % 2 == 0 { &app } else { &other };
        let browser = instance.new_browser();
        let csrf = crate::helpers::csrf_of(&browser, instance.url("/report")).await;
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", csrf)
            .text("nik", SITI_NIK)
            .text("email", format!("pelapor.{i}@example.net"))
            .text("phone", "0813-1111-2222")
            .text("statement", "NIK saya dipakai orang lain.")
            .part("ktp_photo", photo_part(ktp_jpeg(), "ktp.jpg"))
            .part("selfie", photo_part(photo.clone(), "selfie.jpg"));
        sends.push(async move {
            let response = browser
                .post(instance.url("/report"))
                .multipart(form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if ![200, 429].contains(&status) {
                eprintln!("{}", response.text().await.unwrap());
            }
            status
        });
    }
    let mut statuses = futures_util::future::join_all(sends).await;
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429]);
    let mut conn = app.state.pool.get().unwrap();
    let cases: i64 = emeterai::schema::nik_cases::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(cases, 1, "one case for one NIK");
    let reports: i64 = emeterai::schema::nik_case_parties::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(reports, 2);
    other.stop().await;
}

/// A copy of the database holds nothing of a report in clear: not the NIK,
/// the contact, the statement, the replies or any piece of the photos.
async fn a_case_is_sealed_in_the_database_and_its_dump(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut holder = Registration {
        email: "pemegang@example.net".into(),
        ..Registration::default()
    };
    app.register_and_verify(&mut holder).await;
    let selfie = noisy_jpeg(11);
    let browser = app.new_browser();
    let response = report(
        &app,
        &browser,
        "pelapor.rahasia@example.org",
        Some(ktp_jpeg()),
        Some(selfie.clone()),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mails = app.wait_for_mail("pelapor.rahasia@example.org", 1).await;
    assert_eq!(
        reply(
            &app,
            &browser,
            &status_path(&mails[0]),
            "Balasan rahasia nomor 77."
        )
        .await,
        303
    );
    // Sent mails keep no body; wait until the worker marked it sent.
    for _ in 0..100 {
        let mut conn = app.state.pool.get().unwrap();
        let waiting: i64 = emeterai::schema::mail_outbox::table
            .filter(emeterai::schema::mail_outbox::sealed.is_not_null())
            .count()
            .get_result(&mut conn)
            .unwrap();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let copy = crate::sealing::database_copy(&app, backend);
    for secret in [
        "3578015708950001",
        "pelapor.rahasia@example.org",
        "6281311112222",
        "NIK saya sudah dipakai",
        "Balasan rahasia nomor 77",
    ] {
        assert!(
            !crate::sealing::contains(&copy, secret.as_bytes()),
            "{secret} is in the copy of the database"
        );
    }
    // The photo as stored (normalised: the same input gives the same bytes).
    let stored = emeterai::domain::KtpPhoto::parse(&selfie, false).unwrap();
    let stored = stored.data();
    assert_eq!(
        &stored[6..10],
        b"JFIF",
        "a normalised photo carries the JFIF mark"
    );
    for at in [64, stored.len() / 2, stored.len() - 96] {
        let piece = &stored[at..at + 32];
        assert!(
            !crate::sealing::contains(&copy, piece),
            "photo bytes in the copy"
        );
        assert!(!crate::sealing::contains(
            &copy,
            hex::encode(piece).as_bytes()
        ));
    }
    assert!(
        !crate::sealing::contains(&copy, b"JFIF"),
        "no JPEG header in the copy"
    );
}

/// The holder objects and staff uphold the objection: the account works
/// again and holds the NIK; the reporter reads why the report failed.
async fn an_upheld_objection_reinstates_the_account(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut holder = Registration {
        email: "pemegang@example.net".into(),
        ..Registration::default()
    };
    app.register_and_verify(&mut holder).await;
    let browser = app.new_browser();
    let response = report(
        &app,
        &browser,
        "pelapor@example.org",
        Some(ktp_jpeg()),
        Some(noisy_jpeg(21)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reference = case_reference(&response.text().await.unwrap()).unwrap();
    let staff = crate::staff::signed_in_staff(&app).await;
    staff_post(&app, &staff, &reference, "release", "Bukti pelapor cocok.").await;
    let mails = app.wait_for_mail("pemegang@example.net", 2).await;
    let holder_status = status_path(&mails[1]);
    let holder_browser = app.new_browser();
    assert_eq!(
        reply(
            &app,
            &holder_browser,
            &holder_status,
            "Ini KTP saya, terlampir di akun."
        )
        .await,
        303
    );
    let response = app.login("pemegang@example.net", &holder.password).await;
    assert_eq!(
        response.status(),
        403,
        "still suspended while staff look again"
    );
    let page = staff_post(
        &app,
        &staff,
        &reference,
        "reinstate",
        "Foto KTP akun cocok dengan pemegang.",
    )
    .await;
    assert!(page.contains("Keberatan diterima"), "{page}");
    assert!(page.contains("Ditolak"), "{page}");
    // The holder's status page says what it means for them; the
    // reporter's, that the report was rejected.
    let page = html_of(&holder_browser, app.url(&holder_status)).await;
    assert!(
        page.contains("Selesai: keberatan Anda diterima, akun aktif kembali"),
        "{page}"
    );
    assert!(!page.contains("Ditolak"), "{page}");
    let reporter_mails = app.wait_for_mail("pelapor@example.org", 1).await;
    let page = html_of(&browser, app.url(&status_path(&reporter_mails[0]))).await;
    assert!(page.contains("Ditolak"), "{page}");
    assert!(!page.contains("keberatan Anda diterima"), "{page}");
    let response = app.login("pemegang@example.net", &holder.password).await;
    assert_eq!(response.status(), 303, "the account works again");
    let mails = app.wait_for_mail("pemegang@example.net", 4).await;
    assert!(
        mails[3].subject.contains("aktif kembali"),
        "{}",
        mails[3].subject
    );
    let mails = app.wait_for_mail("pelapor@example.org", 3).await;
    assert!(
        mails[2]
            .text
            .contains("Foto KTP akun cocok dengan pemegang.")
    );
    // The NIK is held again: a new registration with it meets the 409.
    let mut again = Registration {
        email: "lagi@example.org".into(),
        ..Registration::default()
    };
    assert_eq!(app.register(&mut again).await.status(), 409);
}

on_both_backends!(
    a_stolen_nik_is_reported_reviewed_released_and_registered,
    an_upheld_objection_reinstates_the_account,
    a_case_is_sealed_in_the_database_and_its_dump,
    bad_reports_change_nothing_and_a_rejected_case_says_why,
    parallel_reports_on_two_instances_open_one_case_within_the_limit,
);
