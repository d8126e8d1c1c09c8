//! A real HTTP server on loopback standing in for the mail provider. It
//! records every message with its Authorization header and answers with
//! the planned statuses in turn (200 once the plan is used up).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct SentMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The outbox id, which delivery events name the mail by.
    #[serde(default)]
    pub reference: String,
    #[serde(skip)]
    pub authorization: String,
    /// The `Idempotency-Key` header: the outbox id, the same on every try.
    #[serde(skip)]
    pub idempotency_key: String,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<SentMail>,
    attempts: usize,
    plan: VecDeque<u16>,
}

#[derive(Clone, Default)]
pub struct MailStub {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

async fn receive(req: HttpRequest, body: web::Bytes, stub: web::Data<MailStub>) -> HttpResponse {
    let mut inner = stub.inner.lock().unwrap();
    inner.attempts += 1;
    let status = inner.plan.pop_front().unwrap_or(200);
    if status == 200 {
        let mut mail: SentMail = serde_json::from_slice(&body).expect("provider JSON");
        mail.authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        mail.idempotency_key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        inner.accepted.push(mail);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl MailStub {
    pub fn start() -> MailStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stub = MailStub {
            inner: Arc::default(),
            url: format!("http://127.0.0.1:{port}/v1/send"),
        };
        let data = web::Data::new(stub.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/send", web::post().to(receive))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .run();
        actix_web::rt::spawn(server);
        stub
    }

    /// The next answers, e.g. `[500]` to fail the next delivery.
    pub fn plan(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().plan.extend(statuses);
    }

    pub fn accepted(&self) -> Vec<SentMail> {
        self.inner.lock().unwrap().accepted.clone()
    }

    pub fn attempts(&self) -> usize {
        self.inner.lock().unwrap().attempts
    }

    /// Waits (up to 30 s, for a loaded CI machine) until `count` mails to
    /// `to` were accepted.
    pub async fn try_wait_for(&self, to: &str, count: usize) -> Option<Vec<SentMail>> {
        for _ in 0..600 {
            let mails: Vec<SentMail> = self
                .accepted()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .collect();
            if mails.len() >= count {
                return Some(mails);
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// The `/verify?token=...` path of a verification mail.
pub fn verification_path(mail: &SentMail) -> String {
    let start = mail.text.find("/verify?token=").expect("link in mail");
    mail.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
