//! Limits that hold under parallel requests and across instances (counted
//! in the database), and the upload budget.

use diesel::prelude::*;

use crate::helpers::{Backend, Registration, TestApp, noisy_jpeg};
use crate::on_both_backends;

/// 30 password-reset requests for one address at the same moment, half
/// through a second instance: exactly the limit gets through, and every
/// refusal's page and `Retry-After` say the same wait.
async fn a_limit_holds_under_parallel_requests_on_two_instances(backend: Backend) {
    // Instances of one deployment share the secret key (the limit keys
    // are keyed hashes).
    let configure = |s: &mut emeterai::config::Settings| {
        s.rate_limit_per_email_hour = 5;
        s.secret_key = Some("one secret for every instance of the portal".into());
    };
    let Some(app) = TestApp::spawn_with(backend, configure).await else {
        return;
    };
    let Some(second) = TestApp::spawn_on(app.db.share(), configure).await else {
        return;
    };
    let csrf_one = app.csrf_from("/password/forgot").await;
    let csrf_two = second.csrf_from("/password/forgot").await;
    let posts = (0..30).map(|i| {
        let (instance, csrf) = if i % 2 == 0 {
            (&app, &csrf_one)
        } else {
            (&second, &csrf_two)
        };
        instance
            .client
            .post(instance.url("/password/forgot"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", "siapa@example.com"),
            ])
            .send()
    });
    let mut allowed = 0;
    let mut refused = 0;
    for response in futures_util::future::join_all(posts).await {
        let response = response.unwrap();
        match response.status().as_u16() {
            303 => allowed += 1,
            429 => {
                refused += 1;
                let secs: i64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((3500..=3600).contains(&secs), "{secs}");
                let minutes = (secs + 59) / 60;
                let html = response.text().await.unwrap();
                assert!(
                    html.contains(&format!("<strong>{minutes} menit</strong>")),
                    "{html}"
                );
                assert!(html.contains(r#"href="/password/forgot""#));
                assert!(html.contains(r#"href="/login""#));
                assert!(html.contains("1500 159"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((allowed, refused), (5, 25));
}

/// Sign-ups from one client address are limited per hour (the level a
/// crowd behind one carrier-grade NAT address does not reach).
async fn registrations_are_limited_per_client_address(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.registrations_per_ip_hour = 2).await else {
        return;
    };
    let citizens = [
        Registration::default(),
        Registration::budi(),
        Registration {
            email: "ketiga@example.com".into(),
            nik: "3201014708900004".into(),
            birth_date: "1990-08-07".into(),
            ..Default::default()
        },
    ];
    let mut statuses = Vec::new();
    for mut citizen in citizens {
        statuses.push(app.register(&mut citizen).await.status().as_u16());
    }
    assert_eq!(statuses, [303, 303, 429]);
}

/// Past the budget for photos no account owns yet, new sign-ups get the
/// 503 page (nothing stored), and `/metrics` shows how full it is.
async fn the_upload_budget_refuses_new_photos_when_full(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.upload_budget_mb = 1).await else {
        return;
    };
    let big = |r: Registration, seed| Registration {
        photo: Some(("ktp.jpg".into(), noisy_jpeg(seed))),
        ..r
    };
    assert_eq!(
        app.register(&mut big(Registration::default(), 1))
            .await
            .status(),
        303
    );
    let first = app.state.refresh_upload_bytes().await.unwrap();
    assert!((500_000..1_048_576).contains(&first), "{first}");
    assert_eq!(
        app.register(&mut big(Registration::budi(), 2))
            .await
            .status(),
        303
    );
    let both = app.state.refresh_upload_bytes().await.unwrap();
    assert!(both > 1_048_576, "{both}");
    let mut third = big(
        Registration {
            email: "ketiga@example.com".into(),
            nik: "3201014708900004".into(),
            birth_date: "1990-08-07".into(),
            ..Default::default()
        },
        3,
    );
    let response = app.register(&mut third).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!("emeterai_upload_unowned_bytes {both}")),
        "{metrics}"
    );
    assert!(metrics.contains("emeterai_upload_budget_bytes 1048576"));
}

/// A fresh key hit by many requests at once: every one below the limit is
/// allowed and counted once, including those that raced the key's first
/// event (they used to be refused as if the limit were reached).
async fn a_new_key_under_parallel_requests_refuses_nobody(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for round in 0..5 {
        let key = format!("race-{round}");
        let answers = futures_util::future::join_all((0..24).map(|_| {
            let state = app.state.clone();
            let key = key.clone();
            async move {
                emeterai::services::limits::allow(&state.services(), vec![(key, 1000)])
                    .await
                    .unwrap()
            }
        }))
        .await;
        assert!(
            answers.iter().all(|a| a.is_allowed()),
            "round {round}: {answers:?}"
        );
        let mut conn = app.state.pool.get().unwrap();
        let count: i32 = emeterai::schema::rate_counters::table
            .find(&key)
            .select(emeterai::schema::rate_counters::count)
            .first(&mut *conn)
            .unwrap();
        assert_eq!(count, 24, "round {round}");
    }
}

on_both_backends!(
    a_new_key_under_parallel_requests_refuses_nobody,
    a_limit_holds_under_parallel_requests_on_two_instances,
    registrations_are_limited_per_client_address,
    the_upload_budget_refuses_new_photos_when_full,
);

/// One sign-in attempt (citizen or staff form at `url`); its status.
async fn sign_in_status(
    client: &reqwest::Client,
    url: String,
    csrf: &str,
    email: &str,
    password: &str,
) -> u16 {
    client
        .post(url)
        .form(&[
            ("csrf_token", csrf),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 30 wrong passwords for one citizen at the same moment, through two
/// instances: only the limit reaches the password check, the rest (and
/// then the right password too) get 429 while sign-in is paused, and the
/// owner gets one mail that says how to get back in.
async fn parallel_password_guessing_stops_at_the_limit(backend: Backend) {
    let configure = |s: &mut emeterai::config::Settings| {
        s.signin_attempts = 5;
        s.secret_key = Some("one secret for every instance of the portal".into());
    };
    let Some(app) = TestApp::spawn_with(backend, configure).await else {
        return;
    };
    let Some(second) = TestApp::spawn_on(app.db.share(), configure).await else {
        return;
    };
    let mut siti = Registration::default();
    app.register_and_verify(&mut siti).await;
    let csrf_one = app.csrf_from("/password/forgot").await;
    let csrf_two = second.csrf_from("/password/forgot").await;
    let guesses = (0..30).map(|i| {
        let (instance, csrf) = if i % 2 == 0 {
            (&app, &csrf_one)
        } else {
            (&second, &csrf_two)
        };
        let guess = format!("tebakan nomor {i}");
        async move {
            sign_in_status(
                &instance.client,
                instance.url("/login"),
                csrf,
                "siti.aminah@example.co.id",
                &guess,
            )
            .await
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 422).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // Three free guesses; every other one came too soon after them.
    assert_eq!((checked, refused), (3, 27), "{statuses:?}");
    // A patient guesser waits as told, and meets longer waits, then the
    // pause: five guesses in all.
    let mut waits = Vec::new();
    for i in 0..10 {
        let response = second
            .login("siti.aminah@example.co.id", &format!("sabar {i}"))
            .await;
        match response.status().as_u16() {
            422 => continue,
            429 => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let html = response.text().await.unwrap();
                if html.contains("menit</strong>") {
                    break;
                }
                assert!(html.contains(&format!("tunggu {wait} detik")), "{html}");
                waits.push(wait);
                tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 50)).await;
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(waits, [1, 2], "the waits grow");
    // The right password waits too, with the wait on the page.
    let response = app.login("siti.aminah@example.co.id", &siti.password).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.unwrap();
    assert!(html.contains("menit</strong>"), "{html}");
    assert!(html.contains(r#"href="/password/forgot""#));
    // One mail to the owner, however many refusals on either instance
    // (whichever instance's worker delivers it).
    let mut conn = app.state.pool.get().unwrap();
    let paused: Vec<String> = emeterai::schema::mail_outbox::table
        .filter(emeterai::schema::mail_outbox::kind.eq("sign_in_locked"))
        .select(emeterai::schema::mail_outbox::to_address)
        .load(&mut *conn)
        .unwrap();
    // (The address is kept as its blind index: the outbox holds none.)
    assert_eq!(
        paused,
        [emeterai::db::identity::email_index(
            &app.state.keys,
            "siti.aminah@example.co.id"
        )]
    );
    drop(conn);
}

/// The staff lock is counted before the password is checked: 30 parallel
/// wrong passwords get three checks (then growing waits, then the lock).
async fn parallel_staff_guessing_stops_at_five(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    crate::staff::create_staff(&app, "petugas@peruri.test", "kopi tubruk pagi hari siang");
    let browser = app.new_browser();
    let csrf = crate::helpers::csrf_of(&browser, app.url("/staff/login")).await;
    let guesses = (0..30).map(|i| {
        let guess = format!("tebakan petugas {i}");
        let (browser, csrf, app) = (&browser, &csrf, &app);
        async move {
            sign_in_status(
                browser,
                app.url("/staff/login"),
                csrf,
                "petugas@peruri.test",
                &guess,
            )
            .await
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 422).count();
    // Three free guesses, then each must wait for the one before.
    assert_eq!(checked, 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 27);
}

on_both_backends!(
    parallel_password_guessing_stops_at_the_limit,
    parallel_staff_guessing_stops_at_five,
);

/// 300 connections that send headers and then an idle body: the portal
/// answers others at once, and closes the idle ones at the body deadline.
/// A kept-alive connection's second request has a header deadline too.
async fn idle_bodies_and_slow_headers_are_cut_off(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.body_timeout_secs = 2;
        s.header_timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        socket
            .write_all(
                b"POST /login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ncsrf_token=",
            )
            .await
            .unwrap();
        idle.push(socket);
    }
    // Ordinary visitors are answered meanwhile.
    let quick = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = quick.get(app.url("/register")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // Past the body deadline every idle connection is answered and closed.
    let mut closed = 0;
    for mut socket in idle {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(6),
            socket.read_to_end(&mut buffer),
        )
        .await;
        if matches!(read, Ok(Ok(_)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 300, "idle-body connections still open");

    // Keep-alive (off by default: one request per connection): a second
    // request whose headers never finish does not keep the connection.
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    socket.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: por")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        socket.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "a stalled second request kept its connection");
}

on_both_backends!(idle_bodies_and_slow_headers_are_cut_off);

/// Draft photos are bounded per form and per browser session: a newer
/// photo replaces the draft's older one, and past the session's bound the
/// form comes back with its answers but keeps no photo.
async fn draft_photos_are_bounded_per_form_and_session(backend: Backend) {
    use emeterai::schema::ktp_uploads;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let photo = std::fs::read("tests/fixtures/ktp.jpg").unwrap();
    let uploads = || {
        let mut conn = app.state.pool.get().unwrap();
        ktp_uploads::table
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
    };
    let mut form = Registration {
        nik: "12".into(),
        photo: Some(("ktp.jpg".into(), photo.clone())),
        ..Default::default()
    };
    let (csrf, submission) = app.open_register_form().await;
    form.csrf_token = csrf;
    form.submission_id = submission;
    let mut kept = Vec::new();
    for _ in 0..emeterai::services::registration::DRAFTS_PER_SESSION + 1 {
        let response = app.post_register(&form).await;
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        let id = crate::helpers::attr_after(&html, r#"name="ktp_upload_id""#, "value");
        kept.push(id.clone());
        // The same form, sent again with a new photo and its draft's id.
        form.ktp_upload_id = id;
        // Replaced, not added: one draft photo at a time.
        assert!(uploads() <= 1, "{} draft photos", uploads());
    }
    let (last, earlier) = kept.split_last().unwrap();
    assert!(earlier.iter().all(Option::is_some));
    // Past the bound the newest photo is not kept; the earlier draft is.
    assert_eq!(last, &earlier[earlier.len() - 1]);
}

on_both_backends!(draft_photos_are_bounded_per_form_and_session);

/// Two sign-in attempts at once, the free ones of a window: the one that
/// read the clock a moment earlier but is counted second is not told to
/// wait (a double-pressed "Masuk" got 429 "wait a second").
async fn a_parallel_free_attempt_is_not_told_to_wait(backend: Backend) {
    use emeterai::services::limits::{SignInGate, paced_allow};
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut conn = app.state.pool.get().unwrap();
    let window = chrono::Duration::minutes(15);
    let later = app.state.clock.now();
    let earlier = later - chrono::Duration::milliseconds(5);
    // The first attempt opens the window; then two more, each counted
    // after an attempt whose clock was read later.
    for now in [later, earlier, earlier - chrono::Duration::milliseconds(5)] {
        let gate = paced_allow(&mut conn, "signin-test:parallel", now, window, 10).unwrap();
        assert!(matches!(gate, SignInGate::Open), "{gate:?}");
    }
    // Past the free attempts the pace holds: the next one waits.
    let gate = paced_allow(&mut conn, "signin-test:parallel", later, window, 10).unwrap();
    assert!(matches!(gate, SignInGate::Wait { .. }), "{gate:?}");
}

on_both_backends!(a_parallel_free_attempt_is_not_told_to_wait);
