//! Property tests ("fuzzing" on stable Rust, with proptest) over the form
//! and query parsing: no input may panic a parser, and no request, however
//! its query, form or multipart body is made, may get a 500 or drop the
//! connection. The routes are tried on a real server, signed in as staff
//! and with a valid CSRF token, so the parsing behind the token check is
//! reached too.

use std::io::{Read, Write};
use std::sync::Arc;

use proptest::prelude::*;

use crate::helpers::{Backend, TestApp, attr_after};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that looks like what the parsers expect, or like it went wrong.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9 .\\-/+]{0,40}",
        "-?[0-9]{1,7}-[0-9]{1,3}-[0-9]{1,3}",
        "\\+?[0-9]{0,3}[ -]?[0-9]{0,20}",
        "[a-zA-Z0-9._%+\\-]{0,70}@[a-zA-Z0-9.\\-]{0,260}",
        "[A-Za-z' .\\-]{0,200}",
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn domain_parsers_never_panic(text in field_text(), other in field_text()) {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let _ = emeterai::domain::Nik::parse(&text, today);
        let _ = emeterai::domain::BirthDate::parse(&text, today);
        let _ = emeterai::domain::Email::parse(&text);
        let _ = emeterai::domain::PhoneNumber::parse(&text);
        let _ = emeterai::domain::Npwp::parse_optional(&text);
        let _ = emeterai::domain::FullName::parse(&text);
        let _ = emeterai::domain::email_mask(&text);
        let _ = emeterai::domain::mask_nik(&text);
        let _ = emeterai::routes::staff::staff_date(&text);
        let _ = emeterai::domain::second_factor::recovery_code_hash(&text);
        let _ = emeterai::domain::second_factor::TotpSecret::from_base32(&text);
        static COMMON: std::sync::OnceLock<emeterai::domain::CommonPasswords> =
            std::sync::OnceLock::new();
        let common = COMMON.get_or_init(emeterai::domain::CommonPasswords::load);
        let email = emeterai::domain::Email::parse(&other).ok();
        let _ = emeterai::domain::Password::parse(&text, &other, email.as_ref(), None, None, common);
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Any bytes, alone or behind a JPEG, PNG or WebP signature.
    #[test]
    fn photo_parsing_never_panics(
        prefix in 0usize..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        truncated in any::<bool>(),
    ) {
        let signatures: [&[u8]; 4] = [
            b"",
            &[0xFF, 0xD8, 0xFF, 0xE1],
            b"\x89PNG\r\n\x1a\n",
            b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        ];
        let mut data = signatures[prefix].to_vec();
        data.extend_from_slice(&bytes);
        let _ = emeterai::domain::KtpPhoto::parse(&data, truncated);
    }
}

/// A running portal (SQLite) with a staff member signed in, for the HTTP
/// properties: its address, the cookies to send and the session's CSRF
/// token and form id.
struct Target {
    addr: String,
    cookies: String,
    csrf: String,
    submission: String,
}

fn target() -> &'static Target {
    static TARGET: std::sync::OnceLock<Target> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
                crate::staff::create_staff(&app, "fuzz@staff.test", "fuzz staff password long");
                let jar = Arc::new(reqwest::cookie::Jar::default());
                let client = reqwest::Client::builder()
                    .cookie_provider(jar.clone())
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let signed_in = crate::staff::staff_sign_in(
                    &app,
                    &client,
                    "fuzz@staff.test",
                    "fuzz staff password long",
                )
                .await;
                assert_eq!(signed_in.status(), 303);
                let page = client.get(app.url("/register")).send().await.unwrap();
                let html = page.text().await.unwrap();
                use reqwest::cookie::CookieStore;
                let cookies = jar
                    .cookies(&app.url("/staff/failures").parse().unwrap())
                    .unwrap();
                tx.send(Target {
                    addr: app.address.trim_start_matches("http://").to_string(),
                    cookies: cookies.to_str().unwrap().to_string(),
                    csrf: attr_after(&html, r#"name="csrf_token""#, "value").unwrap(),
                    submission: attr_after(&html, r#"name="submission_id""#, "value").unwrap(),
                })
                .unwrap();
                // Serves until the test process ends.
                std::future::pending::<()>().await;
                drop(app);
            });
        });
        rx.recv().expect("the portal starts")
    })
}

/// Sends one raw request; the status code, or `None` when the connection
/// was dropped without an answer.
fn send(request: &[u8]) -> Option<u16> {
    let mut socket = std::net::TcpStream::connect(&target().addr).ok()?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    socket.write_all(request).ok()?;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let line = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Every byte percent-encoded: syntactically a valid query or form,
/// whatever the bytes (invalid UTF-8 included).
fn encoded(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

const GET_PATHS: &[&str] = &[
    "/",
    "/register",
    "/register/check-email",
    "/verify",
    "/login",
    "/account",
    "/help",
    "/help/email-registered",
    "/help/connection",
    "/password/forgot",
    "/password/reset",
    "/staff/login",
    "/staff/login/code",
    "/staff/failures",
    "/staff/failures.csv",
    "/staff/failures/REG-ABCD-EFGH",
    "/staff/stats",
    "/staff/audit",
    "/readyz",
];

const FORM_PATHS: &[&str] = &[
    "/login",
    "/verify",
    "/verify/resend",
    "/password/forgot",
    "/password/reset",
    "/staff/login",
    "/staff/login/code",
    "/staff/failures/REG-ABCD-EFGH/note",
    "/staff/failures/REG-ABCD-EFGH/resolve",
];

const KEYS: &[&str] = &[
    "lang",
    "reason",
    "from",
    "to",
    "q",
    "after",
    "before",
    "token",
    "email",
    "password",
    "password_confirm",
    "code",
    "note",
    "full_name",
    "nik",
    "birth_date",
    "phone",
    "npwp",
    "signed_out",
    "reset",
    "page",
];

fn pairs() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    proptest::collection::vec(
        (
            0..KEYS.len(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                field_text().prop_map(String::into_bytes),
            ],
        ),
        0..6,
    )
}

fn query_of(pairs: &[(usize, Vec<u8>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", KEYS[*k], encoded(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn assert_answered(status: Option<u16>, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(status, Some(s) if s < 500 || s == 503),
        "{what}: {status:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn any_query_gets_a_page_not_a_crash(path in 0..GET_PATHS.len(), pairs in pairs()) {
        let t = target();
        let request = format!(
            "GET {}?{} HTTP/1.1\r\nHost: portal\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            GET_PATHS[path],
            query_of(&pairs),
            t.cookies
        );
        assert_answered(send(request.as_bytes()), &request)?;
    }

    #[test]
    fn any_form_gets_a_page_not_a_crash(
        path in 0..FORM_PATHS.len(),
        pairs in pairs(),
        with_csrf in any::<bool>(),
    ) {
        let t = target();
        let mut body = query_of(&pairs);
        if with_csrf {
            body = format!("csrf_token={}&{body}", t.csrf);
        }
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: portal\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            FORM_PATHS[path],
            t.cookies,
            body.len()
        );
        assert_answered(send(request.as_bytes()), &request)?;
    }

    /// Multipart bodies to the registration form: real field names with any
    /// values, file parts with any bytes, and broken framing.
    #[test]
    fn any_multipart_registration_gets_a_page_not_a_crash(
        pairs in pairs(),
        file in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3000)),
        cut in proptest::option::of(0usize..400),
        filename in "[^\"\r\n]{0,30}",
    ) {
        let t = target();
        let boundary = "fuzzboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        let mut part = |name: &str, extra: &str, value: &[u8]| {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        };
        part("csrf_token", "", t.csrf.as_bytes());
        part("submission_id", "", t.submission.as_bytes());
        for (k, v) in &pairs {
            part(KEYS[*k], "", v);
        }
        if let Some(file) = &file {
            part("ktp_photo", &format!("; filename=\"{filename}\""), file);
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        if let Some(cut) = cut {
            body.truncate(body.len().saturating_sub(cut));
        }
        let mut request = format!(
            "POST /register HTTP/1.1\r\nHost: portal\r\nCookie: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            t.cookies,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        assert_answered(send(&request), "multipart registration")?;
    }
}
