//! Outgoing mail: composing the messages, delivering them through the
//! provider's HTTP API from the outbox, retrying with backoff, and the
//! periodic purge of expired registrations.

use std::time::Duration;

use askama::Template;
use chrono::NaiveDateTime;
use serde::Serialize;

use crate::config::Settings;
use crate::db::outbox::{Mail, NewMail, STATUS_PENDING};
use crate::i18n::Lang;

pub const KIND_VERIFY: &str = "verify";

/// Talks to the mail provider (its HTTP API or SMTP), or prints mail to
/// the log when none is set.
pub struct Mailer {
    /// Only with the HTTP API (and no SMTP, which comes first): building
    /// it loads the system's root certificates, about 1 MiB.
    client: Option<reqwest::Client>,
    api_url: Option<String>,
    api_key: Option<String>,
    smtp: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    from: String,
}

#[derive(Serialize)]
struct ProviderMessage<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    text: &'a str,
    html: &'a str,
    /// The outbox id: delivery events name the mail by it.
    reference: &'a str,
}

/// The header SMTP mail carries its outbox id in (the HTTP API's
/// `reference`), for the provider's delivery events.
pub const REFERENCE_HEADER: &str = "X-Emeterai-Reference";

impl Mailer {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let timeout = Duration::from_secs(settings.mail_timeout_secs);
        let client = match (&settings.smtp_url, &settings.mail_api_url) {
            (None, Some(_)) => Some(
                reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .build()
                    .map_err(|e| crate::error::error_chain(&e))?,
            ),
            _ => None,
        };
        // `smtp://host:25`, `smtp://user:pass@host:587?tls=required`
        // (STARTTLS) or `smtps://user:pass@host:465`: lettre's URL form.
        let smtp = match &settings.smtp_url {
            Some(url) => Some(
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("EMETERAI_SMTP_URL: {e}"))?
                    .timeout(Some(timeout))
                    .build(),
            ),
            None => None,
        };
        Ok(Mailer {
            client,
            api_url: settings.mail_api_url.clone(),
            api_key: settings.mail_api_key.clone(),
            smtp,
            from: settings.mail_from.clone(),
        })
    }

    /// One try through SMTP: a multipart/alternative message (text and
    /// HTML). A 2xx reply accepts it; a 4xx, 5xx or a broken connection is
    /// an error to retry later, as with the HTTP API.
    async fn deliver_smtp(
        &self,
        smtp: &lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
        mail: &Mail,
    ) -> Result<(), String> {
        use lettre::AsyncTransport;
        use lettre::message::{Mailbox, MultiPart};
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("sender address: {e}"))?;
        let to: Mailbox = mail
            .to_address
            .parse()
            .map_err(|e| format!("recipient address: {e}"))?;
        // The outbox id in the Message-ID: a copy sent again after an
        // instance died mid-delivery is recognisably the same message.
        let message = lettre::Message::builder()
            .message_id(Some(format!("<{}@e-meterai.outbox>", mail.id)))
            .raw_header(lettre::message::header::HeaderValue::new(
                lettre::message::header::HeaderName::new_from_ascii_str(REFERENCE_HEADER),
                mail.id.clone(),
            ))
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text_body.clone(),
                mail.html_body.clone(),
            ))
            .map_err(|e| format!("message: {e}"))?;
        match smtp.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_timeout() => Err("SMTP server did not answer in time".into()),
            Err(e) => Err(format!("SMTP: {}", crate::error::error_chain(&e))),
        }
    }

    /// One delivery try. Any 2xx is accepted; anything else is an error to
    /// retry later.
    pub async fn deliver(&self, mail: &Mail) -> Result<(), String> {
        if let Some(smtp) = &self.smtp {
            return self.deliver_smtp(smtp, mail).await;
        }
        let (Some(url), Some(client)) = (&self.api_url, &self.client) else {
            tracing::info!(
                to = %mail.to_address,
                subject = %mail.subject,
                body = %mail.text_body,
                "mail (no provider configured, printed instead of sent)"
            );
            return Ok(());
        };
        let message = ProviderMessage {
            from: &self.from,
            to: [&mail.to_address],
            subject: &mail.subject,
            text: &mail.text_body,
            html: &mail.html_body,
            reference: &mail.id,
        };
        // The outbox id as idempotency key: when an instance dies between
        // the provider's answer and marking the mail sent, the retry from
        // another instance carries the same key, so the provider can drop
        // the copy.
        let mut request = client
            .post(url)
            .header("Idempotency-Key", &mail.id)
            .json(&message);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("provider answered {}", response.status())),
            Err(e) if e.is_timeout() => Err("provider did not answer in time".into()),
            Err(e) => Err(format!(
                "provider unreachable: {}",
                crate::error::error_chain(&e)
            )),
        }
    }
}

/// Delay before try number `attempts + 1`: base, 2 x base, 4 x base, ...
/// capped at `max`.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

/// A mail's two bodies.
struct Parts {
    text: String,
    html: String,
}

/// The HTML part of a mail: the same values as its text part, its own
/// template (the template reaches the fields through `Deref`).
macro_rules! html_part {
    ($html:ident, $text:ident, $path:literal) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $html<'a>(&'a $text<'a>);

        impl<'a> std::ops::Deref for $html<'a> {
            type Target = $text<'a>;
            fn deref(&self) -> &Self::Target {
                self.0
            }
        }

        impl $text<'_> {
            /// The mail's text and HTML parts.
            fn parts(&self) -> Result<Parts, askama::Error> {
                Ok(Parts {
                    text: self.render()?,
                    html: $html(self).render()?,
                })
            }
        }
    };
}

#[derive(Template)]
#[template(path = "mail/verify.txt")]
struct VerifyText<'a> {
    lang: Lang,
    name: &'a str,
    link: &'a str,
    hours: u32,
    not_me: &'a str,
}

html_part!(VerifyHtml, VerifyText, "mail/verify.html");

/// The verification mail for an account, ready for the outbox.
pub fn verification_mail(
    settings: &Settings,
    lang: Lang,
    registration_id: &str,
    to: &str,
    name: &str,
    token: &str,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let link = format!("{}/verify?token={}", settings.base_url, token);
    let hours = settings.verify_token_ttl_hours;
    let (not_me, not_me_hash) = not_me_link(settings);
    let values = VerifyText {
        lang,
        name,
        link: &link,
        hours,
        not_me: &not_me,
    };
    let parts = values.parts()?;
    let subject = match lang {
        Lang::Id => "Verifikasi email akun e-Meterai Anda",
        Lang::En => "Verify the email address of your e-Meterai account",
    };
    let mut mail = outbox_mail(KIND_VERIFY, None, to, subject, parts, now);
    mail.registration_id = Some(registration_id.to_string());
    mail.not_me_hash = Some(not_me_hash);
    Ok(mail)
}

pub const KIND_GUIDANCE: &str = "guidance";
pub const KIND_RESET: &str = "reset";
pub const KIND_REMINDER: &str = "reminder";

/// A mail's "not me" link (`/not-me?token=...`) and the hash stored with
/// the mail: its recipient cancels a registration they never made, or
/// secures their account (`services/not_me.rs`).
fn not_me_link(settings: &Settings) -> (String, String) {
    let (token, hash) = crate::domain::link_token::new_link_token();
    (format!("{}/not-me?token={token}", settings.base_url), hash)
}

#[derive(Template)]
#[template(path = "mail/reset.txt")]
struct ResetText<'a> {
    lang: Lang,
    name: &'a str,
    link: &'a str,
    minutes: u32,
    not_me: &'a str,
    /// The "which address did I use?" reminder: this address holds the
    /// NIK; the sign-in page's link beside the reset link.
    reminder: Option<&'a str>,
}

html_part!(ResetHtml, ResetText, "mail/reset.html");

pub const KIND_SIGN_IN_LOCKED: &str = "sign_in_locked";

#[derive(Template)]
#[template(path = "mail/locked.txt")]
struct LockedText<'a> {
    lang: Lang,
    name: &'a str,
    attempts: i64,
    minutes: i64,
    forgot: &'a str,
    phone: &'a str,
    not_me: &'a str,
}

html_part!(LockedHtml, LockedText, "mail/locked.html");

/// The mail to an account's owner when sign-in to it is paused after too
/// many wrong passwords: how long, and how to get back in at once.
pub fn sign_in_locked_mail(
    settings: &Settings,
    account: &crate::db::accounts::Account,
    attempts: i64,
    minutes: i64,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let lang = account_lang(account);
    let forgot = format!("{}/password/forgot", settings.base_url);
    let (name, phone) = (account.full_name.as_str(), settings.contact_phone.as_str());
    let (not_me, not_me_hash) = not_me_link(settings);
    let values = LockedText {
        lang,
        name,
        attempts,
        minutes,
        forgot: &forgot,
        phone,
        not_me: &not_me,
    };
    let parts = values.parts()?;
    let subject = match lang {
        Lang::Id => "Masuk ke akun e-Meterai Anda dihentikan sementara",
        Lang::En => "Signing in to your e-Meterai account is paused",
    };
    let mut mail = outbox_mail(
        KIND_SIGN_IN_LOCKED,
        Some(&account.id),
        &account.email,
        subject,
        parts,
        now,
    );
    mail.not_me_hash = Some(not_me_hash);
    Ok(mail)
}

/// The password-reset mail, ready for the outbox; with `reminder`, the
/// "which address did I use?" mail (the same reset link, and sign-in).
#[allow(clippy::too_many_arguments)]
pub fn reset_mail(
    settings: &Settings,
    lang: Lang,
    account_id: &str,
    to: &str,
    name: &str,
    token: &str,
    reminder: bool,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let link = format!("{}/password/reset?token={}", settings.base_url, token);
    let minutes = settings.reset_token_ttl_minutes;
    let (not_me, not_me_hash) = not_me_link(settings);
    let sign_in = format!("{}/login", settings.base_url);
    let values = ResetText {
        lang,
        name,
        link: &link,
        minutes,
        not_me: &not_me,
        reminder: reminder.then_some(sign_in.as_str()),
    };
    let parts = values.parts()?;
    let (kind, subject) = match (lang, reminder) {
        (Lang::Id, false) => (KIND_RESET, "Buat kata sandi baru untuk akun e-Meterai Anda"),
        (Lang::En, false) => (KIND_RESET, "Set a new password for your e-Meterai account"),
        (Lang::Id, true) => (KIND_REMINDER, "Alamat email akun e-Meterai Anda"),
        (Lang::En, true) => (KIND_REMINDER, "The email address of your e-Meterai account"),
    };
    let mut mail = outbox_mail(kind, Some(account_id), to, subject, parts, now);
    mail.not_me_hash = Some(not_me_hash);
    Ok(mail)
}

#[derive(Template)]
#[template(path = "mail/guidance.txt")]
struct GuidanceText<'a> {
    lang: Lang,
    nik: bool,
    base: &'a str,
    reference: &'a str,
    phone: &'a str,
    whatsapp: &'a str,
    email: &'a str,
}

html_part!(GuidanceHtml, GuidanceText, "mail/guidance.html");

/// Enumeration-safe mode: what the page would have said about an existing
/// account (email or NIK already registered), sent to the mailbox instead.
pub fn guidance_mail(
    settings: &Settings,
    lang: Lang,
    to: &str,
    nik: bool,
    reference: &str,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let (base, phone, whatsapp, email) = (
        settings.base_url.as_str(),
        settings.contact_phone.as_str(),
        settings.contact_whatsapp.as_str(),
        settings.contact_email.as_str(),
    );
    let values = GuidanceText {
        lang,
        nik,
        base,
        reference,
        phone,
        whatsapp,
        email,
    };
    let parts = values.parts()?;
    let subject = match (lang, nik) {
        (Lang::Id, false) => "Alamat email Anda sudah terdaftar di e-Meterai",
        (Lang::Id, true) => "Pendaftaran e-Meterai Anda tidak dapat diproses",
        (Lang::En, false) => "Your email address is already registered with e-Meterai",
        (Lang::En, true) => "Your e-Meterai registration could not be completed",
    };
    Ok(outbox_mail(KIND_GUIDANCE, None, to, subject, parts, now))
}

pub const KIND_EMAIL_CHANGE: &str = "email_change";
pub const KIND_EMAIL_CHANGED: &str = "email_changed";
pub const KIND_CORRECTION: &str = "correction";

#[derive(Template)]
#[template(path = "mail/notice.txt")]
struct NoticeText<'a> {
    lang: Lang,
    name: &'a str,
    intro: &'a str,
    message: Option<&'a str>,
    link: Option<(&'a str, &'a str)>,
    not_me: Option<&'a str>,
}

html_part!(NoticeHtml, NoticeText, "mail/notice.html");

/// What an own-data mail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnDataMail {
    /// To the new address: the link that makes it the account's.
    EmailChangeLink,
    /// To the new address when another account holds it: no link.
    EmailChangeRefused,
    /// To the old address once changed, with "not me".
    EmailChanged,
    CorrectionApproved,
    CorrectionRejected,
}

/// A mail about the citizen's own data to `to` (the account's address,
/// or the new one of an email change).
#[allow(clippy::too_many_arguments)]
pub fn own_data_mail(
    settings: &Settings,
    account: &crate::db::accounts::Account,
    to: &str,
    what: OwnDataMail,
    link: Option<&str>,
    message: Option<&str>,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    use OwnDataMail::*;
    let lang = account_lang(account);
    let (kind, subject, intro, label) = match (lang, what) {
        (Lang::Id, EmailChangeLink) => (
            KIND_EMAIL_CHANGE,
            "Konfirmasi alamat email baru akun e-Meterai",
            "Anda meminta alamat ini menjadi alamat email akun e-Meterai Anda. Buka tautan berikut untuk mengonfirmasinya (berlaku 24 jam). Jika bukan Anda yang meminta, abaikan email ini.",
            "Konfirmasi alamat baru",
        ),
        (Lang::En, EmailChangeLink) => (
            KIND_EMAIL_CHANGE,
            "Confirm the new email address of your e-Meterai account",
            "You asked for this address to become your e-Meterai account's email address. Open this link to confirm it (it works for 24 hours). If you did not ask for this, ignore this email.",
            "Confirm the new address",
        ),
        (Lang::Id, EmailChangeRefused) => (
            KIND_EMAIL_CHANGE,
            "Alamat email ini tidak dapat dipakai",
            "Seseorang meminta alamat ini menjadi alamat email sebuah akun e-Meterai, tetapi alamat ini sudah dipakai akun lain, sehingga tidak ada yang diubah. Jika akun itu milik Anda, masuk dengan alamat ini.",
            "Masuk",
        ),
        (Lang::En, EmailChangeRefused) => (
            KIND_EMAIL_CHANGE,
            "This email address cannot be used",
            "Someone asked for this address to become an e-Meterai account's email address, but another account already has it, so nothing was changed. If that account is yours, sign in with this address.",
            "Sign in",
        ),
        (Lang::Id, EmailChanged) => (
            KIND_EMAIL_CHANGED,
            "Alamat email akun e-Meterai Anda diganti",
            "Alamat email akun e-Meterai Anda baru saja diganti dengan alamat lain. Mulai sekarang semua email kami dikirim ke alamat baru.",
            "",
        ),
        (Lang::En, EmailChanged) => (
            KIND_EMAIL_CHANGED,
            "The email address of your e-Meterai account was changed",
            "The email address of your e-Meterai account was just changed to another one. From now on our mails go to the new address.",
            "",
        ),
        (Lang::Id, CorrectionApproved) => (
            KIND_CORRECTION,
            "Perbaikan data akun e-Meterai Anda diterima",
            "Petugas menerima permintaan perbaikan nama atau tanggal lahir Anda; data akun Anda sudah diperbaiki.",
            "Lihat akun Anda",
        ),
        (Lang::En, CorrectionApproved) => (
            KIND_CORRECTION,
            "Your e-Meterai correction is accepted",
            "Our staff accepted your request to correct your name or date of birth; your account's data is corrected.",
            "See your account",
        ),
        (Lang::Id, CorrectionRejected) => (
            KIND_CORRECTION,
            "Perbaikan data akun e-Meterai Anda tidak dapat diterima",
            "Petugas tidak dapat menerima permintaan perbaikan nama atau tanggal lahir Anda. Alasannya tertulis di bawah; Anda dapat mengajukan lagi dengan foto KTP yang lebih jelas.",
            "Lihat akun Anda",
        ),
        (Lang::En, CorrectionRejected) => (
            KIND_CORRECTION,
            "Your e-Meterai correction could not be accepted",
            "Our staff could not accept your request to correct your name or date of birth. The reason is below; you may ask again with a clearer KTP photo.",
            "See your account",
        ),
    };
    let sign_in = format!("{}/login", settings.base_url);
    let account_page = format!("{}/account", settings.base_url);
    let target = match what {
        EmailChangeLink => link,
        EmailChangeRefused => Some(sign_in.as_str()),
        EmailChanged => None,
        CorrectionApproved | CorrectionRejected => Some(account_page.as_str()),
    };
    let (not_me, not_me_hash) = not_me_link(settings);
    let with_not_me = what == EmailChanged;
    let values = NoticeText {
        lang,
        name: &account.full_name,
        intro,
        message,
        link: target.map(|t| (label, t)),
        not_me: with_not_me.then_some(not_me.as_str()),
    };
    let parts = values.parts()?;
    let mut mail = outbox_mail(kind, Some(&account.id), to, subject, parts, now);
    if with_not_me {
        mail.not_me_hash = Some(not_me_hash);
    }
    Ok(mail)
}

pub const KIND_DELETION: &str = "deletion";

#[derive(Template)]
#[template(path = "mail/deletion.txt")]
struct DeletionText<'a> {
    lang: Lang,
    name: &'a str,
    due: &'a str,
    sign_in: &'a str,
}

html_part!(DeletionHtml, DeletionText, "mail/deletion.html");

/// The mail that confirms a request to delete an account: when, what is
/// deleted and what is kept, and that signing in cancels it.
pub fn deletion_mail(
    settings: &Settings,
    account: &crate::db::accounts::Account,
    due: &str,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let lang = account_lang(account);
    let sign_in = format!("{}/login", settings.base_url);
    let values = DeletionText {
        lang,
        name: &account.full_name,
        due,
        sign_in: &sign_in,
    };
    let parts = values.parts()?;
    let subject = match lang {
        Lang::Id => "Permintaan penghapusan akun e-Meterai Anda",
        Lang::En => "Your request to delete your e-Meterai account",
    };
    Ok(outbox_mail(
        KIND_DELETION,
        Some(&account.id),
        &account.email,
        subject,
        parts,
        now,
    ))
}

pub const KIND_CASE: &str = "case";

/// The steps of a "someone else used my NIK" case a mail tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStep {
    /// To a reporter: the report is received (a new case, or joined).
    Received,
    InReview,
    /// Staff need something from the reporter (the message says what).
    Waiting,
    /// To a reporter: the NIK is released; they can register.
    Released,
    Rejected,
    /// To the holder: the account is suspended, and how to object.
    HolderSuspended,
    /// To the holder: the objection is received.
    Objection,
    /// To the holder: the objection is not upheld; the suspension stays.
    ObjectionRejected,
    /// To the holder: the objection is upheld; the account works again.
    Reinstated,
}

#[derive(Template)]
#[template(path = "mail/case.txt")]
struct CaseText<'a> {
    lang: Lang,
    intro: &'a str,
    reference: &'a str,
    message: Option<&'a str>,
    link: &'a str,
    link_label: &'a str,
}

html_part!(CaseHtml, CaseText, "mail/case.html");

/// What a case mail says, by step: subject, first paragraph.
fn case_wording(step: CaseStep, lang: Lang, hours: u32) -> (&'static str, String) {
    use CaseStep::*;
    match (lang, step) {
        (Lang::Id, Received) => ("Laporan NIK Anda kami terima", format!("Laporan Anda bahwa NIK Anda dipakai orang lain sudah kami terima. Petugas akan memeriksanya dan menjawab paling lambat {hours} jam setelah laporan masuk. Anda tidak perlu menelepon Layanan Bantuan.")),
        (Lang::En, Received) => ("We received your NIK report", format!("We received your report that someone else used your NIK. Our staff will check it and answer within {hours} hours of the report. You do not need to call the Contact Center.")),
        (Lang::Id, InReview) => ("Laporan NIK Anda sedang diperiksa", "Petugas sedang memeriksa laporan Anda.".to_string()),
        (Lang::En, InReview) => ("Your NIK report is being reviewed", "Our staff are reviewing your report.".to_string()),
        (Lang::Id, Waiting) => ("Petugas memerlukan keterangan dari Anda", "Petugas memerlukan keterangan tambahan untuk laporan Anda. Balas melalui halaman status kasus (tautan di bawah).".to_string()),
        (Lang::En, Waiting) => ("Our staff need more from you", "Our staff need more information about your report. Answer on the case's status page (link below).".to_string()),
        (Lang::Id, Released) => ("NIK Anda sudah dapat didaftarkan", "Laporan Anda kami terima: NIK Anda sudah dilepaskan dari akun yang memakainya dan sekarang dapat Anda daftarkan di portal e-Meterai.".to_string()),
        (Lang::En, Released) => ("Your NIK can be registered now", "Your report is upheld: your NIK is released from the account that used it and you can now register it on the e-Meterai portal.".to_string()),
        (Lang::Id, Rejected) => ("Laporan NIK Anda tidak dapat kami terima", "Setelah diperiksa, laporan Anda tidak dapat kami terima. Alasannya tertulis di bawah. Anda dapat mengirim laporan baru dengan bukti yang lebih jelas.".to_string()),
        (Lang::En, Rejected) => ("We could not uphold your NIK report", "Having checked it, we could not uphold your report. The reason is below. You may send a new report with clearer evidence.".to_string()),
        (Lang::Id, HolderSuspended) => ("Akun e-Meterai Anda ditangguhkan", "Pemilik NIK yang terdaftar pada akun Anda melaporkan bahwa NIK tersebut dipakai tanpa haknya, dan petugas menerima laporan itu setelah memeriksa KTP dan foto diri pelapor. Akun Anda ditangguhkan: Anda tidak dapat masuk, dan semua sesi sudah diakhiri. Jika menurut Anda ini keliru, ajukan keberatan melalui tautan di bawah.".to_string()),
        (Lang::En, HolderSuspended) => ("Your e-Meterai account is suspended", "The owner of the NIK registered on your account reported that it was used without their right, and our staff upheld the report after checking the reporter's KTP and a photo of them holding it. Your account is suspended: you cannot sign in, and every session has ended. If you think this is a mistake, object through the link below.".to_string()),
        (Lang::Id, Objection) => ("Keberatan Anda kami terima", format!("Keberatan Anda sudah kami terima. Petugas akan memeriksanya dan menjawab paling lambat {hours} jam.")),
        (Lang::En, Objection) => ("We received your objection", format!("We received your objection. Our staff will check it and answer within {hours} hours.")),
        (Lang::Id, ObjectionRejected) => ("Keberatan Anda tidak dapat kami terima", "Setelah diperiksa, keberatan Anda tidak dapat kami terima: akun Anda tetap ditangguhkan. Alasannya tertulis di bawah.".to_string()),
        (Lang::En, ObjectionRejected) => ("We could not uphold your objection", "Having checked it, we could not uphold your objection: your account stays suspended. The reason is below.".to_string()),
        (Lang::Id, Reinstated) => ("Akun e-Meterai Anda aktif kembali", "Keberatan Anda kami terima: penangguhan dicabut dan Anda dapat masuk lagi dengan alamat email dan kata sandi Anda.".to_string()),
        (Lang::En, Reinstated) => ("Your e-Meterai account works again", "Your objection is upheld: the suspension is lifted and you can sign in again with your email address and password.".to_string()),
    }
}

/// A mail about a case to one of its parties, with the link to the case's
/// status page (`/report/status?token=...`).
#[allow(clippy::too_many_arguments)]
pub fn case_mail(
    settings: &Settings,
    lang: Lang,
    to: &str,
    step: CaseStep,
    reference: &str,
    token: &str,
    message: Option<&str>,
    now: NaiveDateTime,
) -> Result<NewMail, askama::Error> {
    let (subject, intro) = case_wording(step, lang, settings.case_answer_hours);
    let link = format!("{}/report/status?token={token}", settings.base_url);
    let link_label = match (lang, step) {
        (Lang::Id, CaseStep::HolderSuspended) => "Lihat kasus dan ajukan keberatan",
        (Lang::En, CaseStep::HolderSuspended) => "See the case and object",
        (Lang::Id, _) => "Lihat status kasus",
        (Lang::En, _) => "See the case's status",
    };
    let values = CaseText {
        lang,
        intro: &intro,
        reference,
        message,
        link: &link,
        link_label,
    };
    let parts = values.parts()?;
    Ok(outbox_mail(KIND_CASE, None, to, subject, parts, now))
}

/// The language an account chose.
fn account_lang(account: &crate::db::accounts::Account) -> Lang {
    Lang::from_code(&account.lang).unwrap_or_default()
}

/// A mail ready for the outbox, due now.
fn outbox_mail(
    kind: &str,
    account_id: Option<&str>,
    to: &str,
    subject: &str,
    Parts { text, html }: Parts,
    now: NaiveDateTime,
) -> NewMail {
    NewMail {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: account_id.map(str::to_string),
        kind: kind.to_string(),
        to_address: to.to_string(),
        subject: subject.to_string(),
        text_body: text,
        html_body: html,
        status: STATUS_PENDING.to_string(),
        next_attempt_at: now,
        created_at: now,
        registration_id: None,
        sealed: None,
        data_key_id: None,
        not_me_hash: None,
    }
}

/// Hours a draft's photo (a form that came back with errors) is kept.
pub const DRAFT_HOURS: i64 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=8).map(|a| backoff(a, base, max).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(1000, base, max), max);
    }
}
