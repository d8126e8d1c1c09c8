//! Mail through SMTP (`EMETERAI_SMTP_URL`) to a real SMTP server on
//! loopback: the same outbox, the same links, the same retries.

use crate::helpers::{Backend, Registration, TestApp};
use crate::on_both_backends;
use crate::smtp_sink::{SmtpSink, decoded};

async fn spawn_with_smtp(backend: Backend, sink: &SmtpSink) -> Option<TestApp> {
    let url = sink.url();
    TestApp::spawn_with(backend, move |s| {
        s.mail_api_url = None;
        s.mail_api_key = None;
        s.smtp_url = Some(url);
        s.resend_cooldown_secs = 0;
    })
    .await
}

/// A citizen registers, the verification mail goes out over SMTP as text
/// and HTML, and its link chooses the password.
async fn verification_mail_goes_through_smtp(backend: Backend) {
    let sink = SmtpSink::start();
    let Some(app) = spawn_with_smtp(backend, &sink).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mails = sink.wait_for("siti.aminah@example.co.id", 1).await;
    let mail = &mails[0];
    assert_eq!(mail.from, "noreply@e-meterai.local");
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    assert!(
        mail.data.contains("@e-meterai.outbox>"),
        "Message-ID from the outbox id"
    );
    // The outbox id for the provider's delivery events, as a header.
    let reference = mail
        .data
        .lines()
        .find_map(|l| l.strip_prefix("X-Emeterai-Reference: "))
        .expect("the reference header");
    assert!(
        mail.data
            .contains(&format!("<{}@e-meterai.outbox>", reference.trim())),
        "the same id as the Message-ID"
    );
    let text = decoded(mail);
    assert!(text.contains("Subject: "), "{text}");
    let start = text.find("/verify?token=").expect("link in the mail");
    let path: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/?=_-".contains(*c))
        .collect();
    let response = app
        .choose_password(&path, "kopi tubruk pagi hari", "kopi tubruk pagi hari")
        .await;
    assert_eq!(response.status(), 303, "{path}");
    // Nothing went to the HTTP API.
    assert!(app.mail.accepted().is_empty());
}

/// The relay refuses twice with a temporary error: the outbox retries and
/// the mail arrives exactly once.
async fn a_refusing_relay_is_retried_and_the_mail_arrives_once(backend: Backend) {
    let sink = SmtpSink::start();
    sink.refuse_next(2);
    let Some(app) = spawn_with_smtp(backend, &sink).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    sink.wait_for("siti.aminah@example.co.id", 1).await;
    actix_web::rt::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(sink.accepted().len(), 1, "delivered once");
    let mut conn = app.state.pool.get().unwrap();
    use diesel::prelude::*;
    use emeterai::schema::mail_outbox;
    let (status, attempts): (String, i32) = mail_outbox::table
        .select((mail_outbox::status, mail_outbox::attempts))
        .first(&mut *conn)
        .unwrap();
    assert_eq!(status, "sent");
    assert_eq!(attempts, 3, "two refusals, then accepted");
}

on_both_backends!(
    verification_mail_goes_through_smtp,
    a_refusing_relay_is_retried_and_the_mail_arrives_once,
);
