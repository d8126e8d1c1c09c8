//! The support staff console under `/staff`.
//!
//! Staff sign in with their own accounts and their own session cookie
//! (`emeterai_staff`, encrypted with a key derived from the secret, path
//! `/staff`, SameSite=Strict): a citizen's session never opens these pages.
//! Every sign-in, detail view, export and action is audited.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use serde::Deserialize;

use crate::db::staff::{self as staff_db, Cursor, FailureFilter};
use crate::domain::email_mask;
use crate::errors::AppError;
use crate::failures::{FailureRow, reason};
use crate::i18n::{Lang, reason_label};
use crate::startup::AppState;
use crate::web::PageCtx;
use crate::web::see_other;

pub const STAFF_COOKIE: &str = "emeterai_staff";
const SESSION_HOURS: i64 = 8;
/// Staff sessions end sooner when idle than citizens' (personal data).
const SESSION_IDLE_MINUTES: i64 = 20;
const PAGE_SIZE: i64 = 50;
/// Indonesia's western time zone, in which staff read times and days.
const WIB_HOURS: i64 = 7;

fn staff_cookie(key: &Key, value: String, secure: bool) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(
        Cookie::build(STAFF_COOKIE, value)
            .path("/staff")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(CookieDuration::hours(SESSION_HOURS))
            .finish(),
    );
    jar.get(STAFF_COOKIE).cloned().expect("cookie just added")
}

fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = Cookie::build(STAFF_COOKIE, "")
        .path("/staff")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    cookie
}

/// The signed-in staff member.
#[derive(Debug, Clone)]
pub struct StaffUser {
    pub id: String,
    pub email: String,
}

/// Reads and checks the staff cookie: decrypts, not expired, the account
/// exists, is not disabled, and its session epoch still matches.
pub async fn current_staff(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Option<StaffUser>, AppError> {
    let Some(cookie) = req.cookie(STAFF_COOKIE) else {
        return Ok(None);
    };
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let Some(plain) = jar.private(&state.staff_cookie_key).get(STAFF_COOKIE) else {
        return Ok(None);
    };
    let mut parts = plain.value().split('|');
    let (Some(id), Some(epoch), Some(expires), Some(sid)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let (Ok(epoch), Ok(expires)) = (epoch.parse::<i64>(), expires.parse::<i64>()) else {
        return Ok(None);
    };
    if expires < chrono::Utc::now().timestamp() {
        return Ok(None);
    }
    let (id, sid) = (id.to_string(), sid.to_string());
    let found = state
        .db(move |conn| -> Result<_, diesel::result::Error> {
            let now = crate::mail::now();
            let idle = Duration::minutes(SESSION_IDLE_MINUTES);
            match crate::db::sessions::check(
                conn,
                crate::db::sessions::KIND_STAFF,
                &sid,
                now,
                idle,
            )? {
                Some(subject) if subject == id => staff_db::find_by_id(conn, &id),
                _ => Ok(None),
            }
        })
        .await?;
    Ok(found
        .filter(|s| s.disabled_at.is_none() && s.session_epoch == epoch)
        .map(|s| StaffUser {
            id: s.id,
            email: s.email,
        }))
}

/// The server-side session id in the staff cookie, if any.
fn staff_session_id(req: &HttpRequest, state: &AppState) -> Option<String> {
    let cookie = req.cookie(STAFF_COOKIE)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let plain = jar.private(&state.staff_cookie_key).get(STAFF_COOKIE)?;
    plain.value().split('|').nth(3).map(str::to_string)
}

async fn audit(
    state: &web::Data<AppState>,
    staff: &StaffUser,
    action: &str,
    target: String,
) -> Result<(), AppError> {
    let (email, action) = (staff.email.clone(), action.to_string());
    state
        .db(move |conn| staff_db::audit(conn, &email, &action, &target, crate::mail::now()))
        .await
}

/// For page handlers: the staff member, or a redirect to the sign-in page.
macro_rules! staff_or_login {
    ($req:expr, $state:expr) => {
        match current_staff(&$req, &$state).await? {
            Some(staff) => staff,
            None => return Ok(see_other("/staff/login")),
        }
    };
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
}

pub async fn login_get(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if current_staff(&req, &state).await?.is_some() {
        return Ok(see_other("/staff/failures"));
    }
    let page = LoginPage {
        csrf: crate::session::csrf_token(&session),
        email: String::new(),
        error: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login_post(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = |ctx: PageCtx, error: &'static str, status: StatusCode| {
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error: Some(error),
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let t = ctx.t;
        return retry(ctx, t.reg_stale, StatusCode::FORBIDDEN);
    }
    let email = form.email.trim().to_lowercase();
    // Counted before any hashing, atomically: 30 parallel guesses get 5
    // checks, not 30 (the lock below only shows what this enforces).
    let gate = crate::failures::reserve_sign_in(
        &state,
        &req,
        "staff",
        &email,
        i64::from(staff_db::MAX_FAILED_LOGINS),
        Duration::minutes(staff_db::LOCK_MINUTES),
    )
    .await?;
    if gate.retry_after().is_some() {
        return refused_sign_in(ctx, gate, retry);
    }
    let lookup = email.clone();
    let found = state
        .db(move |conn| staff_db::find_by_email(conn, &lookup))
        .await?;
    let now = crate::mail::now();
    if let Some(staff) = &found
        && staff.is_locked(now)
    {
        tracing::warn!("staff sign-in refused: account locked");
        let t = ctx.t;
        return retry(ctx, t.staff_locked, StatusCode::TOO_MANY_REQUESTS);
    }
    let stored = found.as_ref().map(|s| s.password_hash.clone());
    let matches =
        crate::passwords::verify(&state, form.password.clone(), stored, "/staff/login").await?;
    match found {
        Some(staff) if matches && staff.disabled_at.is_none() => {
            crate::failures::refund_sign_in(&state, "staff", &email).await?;
            let id = staff.id.clone();
            state
                .db(move |conn| staff_db::login_succeeded(conn, &id))
                .await?;
            if state.settings.staff_second_factor_required() {
                // The password was right; the code comes next (or enrolment).
                super::staff_code::await_code(&session, &staff);
                return Ok(see_other("/staff/login/code"));
            }
            let cookie = start_session(&state, &staff, "sign_in").await?;
            let mut response = see_other("/staff/failures");
            response.add_cookie(&cookie).map_err(AppError::internal)?;
            Ok(response)
        }
        other => {
            if let Some(staff) = other {
                state
                    .db(move |conn| staff_db::login_failed(conn, &staff.id, now))
                    .await?;
            }
            tracing::info!("staff sign-in refused");
            let t = ctx.t;
            retry(ctx, t.login_wrong, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// The page for a refused attempt (too soon, or paused), with a
/// `Retry-After` that says when.
pub(super) fn refused_sign_in(
    ctx: PageCtx,
    gate: crate::failures::SignInGate,
    page: impl FnOnce(PageCtx, &'static str, StatusCode) -> Result<HttpResponse, AppError>,
) -> Result<HttpResponse, AppError> {
    tracing::warn!("staff sign-in refused: too many attempts");
    let t = ctx.t;
    let retry_after_secs = gate.retry_after().unwrap_or(1);
    let message = match gate {
        crate::failures::SignInGate::Wait { .. } => t.staff_wait,
        _ => t.staff_locked,
    };
    let mut response = page(ctx, message, StatusCode::TOO_MANY_REQUESTS)?;
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(retry_after_secs),
    );
    Ok(response)
}

/// Starts a staff session (its record, its audit row) and returns the
/// cookie that carries it.
pub(super) async fn start_session(
    state: &web::Data<AppState>,
    staff: &staff_db::Staff,
    action: &str,
) -> Result<Cookie<'static>, AppError> {
    let user = StaffUser {
        id: staff.id.clone(),
        email: staff.email.clone(),
    };
    audit(state, &user, action, String::new()).await?;
    tracing::info!("staff signed in");
    let subject = staff.id.clone();
    let sid = state
        .db(move |conn| {
            crate::db::sessions::start(
                conn,
                crate::db::sessions::KIND_STAFF,
                &subject,
                crate::mail::now(),
                Duration::hours(SESSION_HOURS),
            )
        })
        .await?;
    let expires = (chrono::Utc::now() + Duration::hours(SESSION_HOURS)).timestamp();
    let value = format!("{}|{}|{}|{sid}", staff.id, staff.session_epoch, expires);
    Ok(staff_cookie(
        &state.staff_cookie_key,
        value,
        state.settings.secure_cookies(),
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return see_other("/staff/failures");
    }
    // The session's record ends too: a copy of the cookie opens nothing.
    if let Some(sid) = staff_session_id(&req, &state) {
        let ended = state
            .db(move |conn| crate::db::sessions::revoke(conn, &sid, crate::mail::now()))
            .await;
        if let Err(e) = ended {
            tracing::warn!(error = %crate::errors::error_chain(&e), "staff session not ended");
        }
    }
    let mut response = see_other("/staff/login");
    let _ = response.add_cookie(&removal_cookie(state.settings.secure_cookies()));
    response
}

// ---------------------------------------------------------------- the list

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    before: String,
}

/// A date staff typed (YYYY-MM-DD), within years the log can hold: the
/// calendar's extremes (year -262143) would overflow the day arithmetic.
pub fn staff_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (2000..=2100).contains(&d.year()))
}

/// Start of a WIB day, in UTC.
fn wib_day_start(day: NaiveDate) -> NaiveDateTime {
    day.and_hms_opt(0, 0, 0).expect("midnight") - Duration::hours(WIB_HOURS)
}

pub fn wib(at: NaiveDateTime) -> String {
    (at + Duration::hours(WIB_HOURS))
        .format("%Y-%m-%d %H:%M:%S WIB")
        .to_string()
}

fn is_reference(q: &str) -> bool {
    let b = q.as_bytes();
    b.len() == 13
        && b[3] == b'-'
        && b[8] == b'-'
        && q.chars()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 8 || c.is_ascii_alphanumeric())
}

/// Turns the query into a filter, or the text of what is wrong with it.
fn parse_filter(
    query: &ListQuery,
    state: &AppState,
    lang: Lang,
) -> Result<FailureFilter, &'static str> {
    let t = lang.text();
    let mut filter = FailureFilter::default();
    if !query.reason.is_empty() {
        if !reason::ALL.contains(&query.reason.as_str()) {
            return Err(t.staff_bad_reason);
        }
        filter.reason = Some(query.reason.clone());
    }
    let date = |text: &str| staff_date(text).ok_or(t.staff_bad_date);
    if !query.from.trim().is_empty() {
        filter.from = Some(wib_day_start(date(&query.from)?));
    }
    if !query.to.trim().is_empty() {
        filter.to = Some(wib_day_start(date(&query.to)? + Duration::days(1)));
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(t.staff_reversed_range);
    }
    let q = query.q.trim();
    if !q.is_empty() {
        let digits = crate::domain::strip_nik(q);
        if is_reference(q) {
            filter.reference = Some(q.to_ascii_uppercase());
        } else if q.contains('@') {
            filter.email = Some(q.to_lowercase());
        } else if digits.len() == 16 && digits.chars().all(|c| c.is_ascii_digit()) {
            filter.nik_hash = Some(state.failures.nik_hash(&digits));
        } else {
            return Err(t.staff_bad_search);
        }
    }
    Ok(filter)
}

pub struct ListRow {
    pub reference: String,
    pub when: String,
    pub reason: &'static str,
    pub fields: String,
    pub email: String,
    pub nik: String,
    pub ip: String,
    pub resolved: bool,
}

fn list_row(row: &FailureRow, lang: Lang) -> ListRow {
    ListRow {
        reference: row.reference.clone(),
        when: wib(row.occurred_at),
        reason: reason_label(&row.reason, lang),
        fields: crate::i18n::field_labels(&row.fields, lang),
        email: row.email.as_deref().map(email_mask).unwrap_or_default(),
        nik: row.nik_masked.clone().unwrap_or_default(),
        ip: row.client_ip.clone().unwrap_or_default(),
        resolved: row.resolved_at.is_some(),
    }
}

#[derive(Template)]
#[template(path = "staff/failures.html")]
struct FailuresPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    query: ListQuery,
    reasons: Vec<(&'static str, &'static str)>,
    rows: Vec<ListRow>,
    error: Option<&'static str>,
    next: Option<String>,
    csv: String,
    first_page: bool,
}

/// The query string of the current filters (without the cursor).
fn filter_query(q: &ListQuery) -> String {
    let pairs = [
        ("reason", &q.reason),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
    ];
    pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn failures(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let query = query.into_inner();
    let lang = ctx.lang;
    let reasons = reason::ALL
        .iter()
        .map(|r| (*r, reason_label(r, lang)))
        .collect();
    let filter = parse_filter(&query, &state, lang);
    let cursor = Cursor::decode(&query.before);
    let (rows, error) = match filter {
        Ok(filter) => {
            let cursor_for_query = cursor.clone();
            let rows = state
                .db(move |conn| staff_db::page(conn, &filter, cursor_for_query.as_ref(), PAGE_SIZE))
                .await?;
            (rows, None)
        }
        Err(message) => (Vec::new(), Some(message)),
    };
    let next = (rows.len() as i64 == PAGE_SIZE).then(|| {
        let last = rows.last().expect("a full page");
        Cursor {
            at: last.occurred_at,
            reference: last.reference.clone(),
        }
        .encode()
    });
    let filters = filter_query(&query);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = FailuresPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        rows: rows.iter().map(|r| list_row(r, lang)).collect(),
        reasons,
        error,
        next: next.map(|n| {
            if filters.is_empty() {
                format!("/staff/failures?before={n}")
            } else {
                format!("/staff/failures?{filters}&before={n}")
            }
        }),
        csv: if filters.is_empty() {
            "/staff/failures.csv".to_string()
        } else {
            format!("/staff/failures.csv?{filters}")
        },
        first_page: cursor.is_none(),
        query,
        ctx,
    };
    page.ctx.render(status, &page)
}

// ---------------------------------------------------------------- CSV

/// A CSV cell: quoted when needed, and never read as a formula by a
/// spreadsheet (a leading = + - @ gets a ').
fn csv_cell(out: &mut String, value: &str) {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&guarded.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&guarded);
    }
}

fn csv_line(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, cell);
    }
    out.push_str("\r\n");
}

const CSV_BATCH: i64 = 1000;

/// `GET /staff/failures.csv`: the current filters as CSV, masked like the
/// list, streamed in batches of 1,000 rows (constant memory at any size).
pub async fn failures_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(staff) = current_staff(&req, &state).await? else {
        return Ok(HttpResponse::Unauthorized()
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("sign in at /staff/login\n"));
    };
    let query = query.into_inner();
    let filter = parse_filter(&query, &state, Lang::En).map_err(AppError::BadRequest)?;
    audit(&state, &staff, "export_csv", filter_query(&query)).await?;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, actix_web::Error>>(2);
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut header = String::new();
        csv_line(
            &mut header,
            &[
                "occurred_at_wib",
                "reference",
                "reason",
                "fields",
                "email",
                "nik",
                "client_ip",
                "user_agent",
                "path",
                "resolved",
            ],
        );
        if tx.send(Ok(Bytes::from(header))).await.is_err() {
            return;
        }
        let mut cursor: Option<Cursor> = None;
        loop {
            let (filter, after) = (filter.clone(), cursor.clone());
            let batch = state
                .db(move |conn| staff_db::page(conn, &filter, after.as_ref(), CSV_BATCH))
                .await;
            let rows = match batch {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(
                        error = %crate::errors::error_chain(&error),
                        "CSV export stopped: database error"
                    );
                    let _ = tx
                        .send(Err(actix_web::error::ErrorServiceUnavailable(
                            "database unavailable",
                        )))
                        .await;
                    return;
                }
            };
            let mut chunk = String::with_capacity(rows.len() * 160);
            for row in &rows {
                let email = row.email.as_deref().map(email_mask).unwrap_or_default();
                csv_line(
                    &mut chunk,
                    &[
                        &wib(row.occurred_at),
                        &row.reference,
                        &row.reason,
                        &row.fields,
                        &email,
                        row.nik_masked.as_deref().unwrap_or(""),
                        row.client_ip.as_deref().unwrap_or(""),
                        row.user_agent.as_deref().unwrap_or(""),
                        &row.path,
                        if row.resolved_at.is_some() {
                            "yes"
                        } else {
                            "no"
                        },
                    ],
                );
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the download was cancelled
            }
            if (rows.len() as i64) < CSV_BATCH {
                return;
            }
            let last = rows.last().expect("a full batch");
            cursor = Some(Cursor {
                at: last.occurred_at,
                reference: last.reference.clone(),
            });
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let name = format!(
        "failures-{}.csv",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

// ---------------------------------------------------------------- detail

pub struct TimelineEntry {
    pub when: String,
    pub at: NaiveDateTime,
    pub what: String,
    pub reference: Option<String>,
}

#[derive(Template)]
#[template(path = "staff/failure.html")]
struct FailurePage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    failure: FailureRow,
    when: String,
    reason: &'static str,
    /// The fields with mistakes, by the form's labels.
    fields: String,
    resolved_when: Option<String>,
    notes: Vec<(String, String, String)>,
    timeline: Vec<TimelineEntry>,
    pending_account: bool,
    /// The account's address, when it was found by NIK under another one,
    /// or else that of a registration waiting under this NIK.
    account_email: Option<String>,
    /// `account_email` belongs to an account (not a waiting registration).
    other_is_account: bool,
    /// KTP photos to open: (whose, upload id).
    photos: Vec<(String, String)>,
    notice: &'static str,
}

#[derive(Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

pub async fn failure(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let reference = path.into_inner().to_ascii_uppercase();
    let lookup = reference.clone();
    let lang = ctx.lang;
    let t = ctx.t;
    let found = state
        .db(move |conn| -> Result<_, AppError> {
            let Some(failure) = crate::failures::find(conn, &lookup)? else {
                return Ok(None);
            };
            let notes = staff_db::notes(conn, &lookup)?;
            let mut related = staff_db::related(
                conn,
                failure.email.as_deref(),
                failure.nik_hash.as_deref(),
                200,
            )?;
            // The citizen's account: by this email, or else by this NIK (an
            // attempt under another address).
            let mut account = match &failure.email {
                Some(email) => crate::db::accounts::find_by_email(conn, email)?,
                None => None,
            };
            if account.is_none()
                && let Some(hash) = &failure.nik_hash
            {
                account = crate::db::accounts::find_by_nik_hash(conn, hash)?;
            }
            if let Some(account) = &account
                && Some(&account.email) != failure.email.as_ref()
            {
                related.extend(staff_db::related(conn, Some(&account.email), None, 200)?);
                related.sort_by(|a, b| {
                    (b.occurred_at, &b.reference).cmp(&(a.occurred_at, &a.reference))
                });
                related.dedup_by(|a, b| a.reference == b.reference);
            }
            let mail_address = account
                .as_ref()
                .map(|a| a.email.clone())
                .or(failure.email.clone());
            let mut registrations = crate::db::registrations::find_related(
                conn,
                failure.email.as_deref(),
                failure.nik_hash.as_deref(),
            )?;
            if let Some(account) = &account {
                registrations.extend(crate::db::registrations::find_related(
                    conn,
                    Some(&account.email),
                    None,
                )?);
                registrations.sort_by(|a, b| a.id.cmp(&b.id));
                registrations.dedup_by(|a, b| a.id == b.id);
            }
            let mut mails = match &mail_address {
                Some(email) => crate::db::outbox::mails_to(conn, email)?,
                None => Vec::new(),
            };
            // Mails to the other addresses a NIK waited under.
            for registration in &registrations {
                if Some(&registration.email) != mail_address.as_ref() {
                    mails.extend(crate::db::outbox::mails_to(conn, &registration.email)?);
                }
            }
            Ok(Some((
                failure,
                notes,
                related,
                account,
                mails,
                registrations,
            )))
        })
        .await?;
    let Some((failure, notes, mut related, account, mails, registrations)) = found else {
        return Err(AppError::NotFound);
    };
    // Without an email or NIK there is no wider story: the failure itself.
    if !related.iter().any(|r| r.reference == failure.reference) {
        related.push(failure.clone());
    }
    audit(&state, &staff, "view_failure", reference.clone()).await?;

    let mut timeline: Vec<TimelineEntry> = related
        .iter()
        .map(|r| TimelineEntry {
            when: wib(r.occurred_at),
            at: r.occurred_at,
            what: reason_label(&r.reason, lang).to_string(),
            reference: Some(r.reference.clone()),
        })
        .collect();
    for registration in &registrations {
        let mut event = |at: NaiveDateTime, what: &str| {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what: format!("{what} ({})", registration.email),
                reference: None,
            })
        };
        event(registration.created_at, t.staff_event_registered);
        if registration.updated_at != registration.created_at {
            event(registration.updated_at, t.staff_event_registration_replaced);
        }
        if let Some(at) = registration.link_opened_at {
            event(at, t.staff_event_link_opened);
        }
        if let Some(at) = registration.completed_at {
            event(at, t.staff_event_password_chosen);
        }
    }
    // An account made through a link is already in the timeline as
    // "password chosen"; older accounts show their own events.
    let made_by_link = |id: &str| {
        registrations
            .iter()
            .any(|r| r.account_id.as_deref() == Some(id))
    };
    if let Some(account) = account.as_ref().filter(|a| !made_by_link(&a.id)) {
        timeline.push(TimelineEntry {
            when: wib(account.created_at),
            at: account.created_at,
            what: t.staff_event_account_created.to_string(),
            reference: None,
        });
        if let Some(at) = account.verified_at {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what: t.staff_event_verified.to_string(),
                reference: None,
            });
        }
    }
    for mail in &mails {
        timeline.push(TimelineEntry {
            when: wib(mail.created_at),
            at: mail.created_at,
            what: format!("{} ({})", t.staff_event_mail_queued, mail.kind),
            reference: None,
        });
        let outcome = match (mail.status.as_str(), mail.sent_at) {
            ("sent", Some(at)) => Some((
                at,
                format!(
                    "{} ({}, {} x)",
                    t.staff_event_mail_sent, mail.kind, mail.attempts
                ),
            )),
            ("failed", _) => Some((
                mail.next_attempt_at,
                format!(
                    "{} ({}, {} x: {})",
                    t.staff_event_mail_failed,
                    mail.kind,
                    mail.attempts,
                    mail.last_error.clone().unwrap_or_default()
                ),
            )),
            _ => None,
        };
        if let Some((at, what)) = outcome {
            timeline.push(TimelineEntry {
                when: wib(at),
                at,
                what,
                reference: None,
            });
        }
    }
    timeline.sort_by_key(|entry| std::cmp::Reverse(entry.at));

    let notice = match query.done.as_deref() {
        Some("note") => t.staff_note_added,
        Some("resolved") => t.staff_marked_resolved,
        Some("resent") => t.staff_resent,
        Some("cooldown") => t.staff_resend_cooldown,
        Some("nothing") => t.staff_resend_nothing,
        _ => "",
    };
    let page = FailurePage {
        csrf: crate::session::csrf_token(&session),
        staff,
        when: wib(failure.occurred_at),
        reason: reason_label(&failure.reason, lang),
        fields: crate::i18n::field_labels(&failure.fields, lang),
        resolved_when: failure.resolved_at.map(wib),
        notes: notes
            .into_iter()
            .map(|n| (wib(n.created_at), n.staff_email, n.note))
            .collect(),
        timeline,
        pending_account: account.is_none()
            && registrations.iter().any(|r| r.completed_at.is_none()),
        account_email: account
            .as_ref()
            .map(|a| a.email.clone())
            .or_else(|| {
                registrations
                    .iter()
                    .filter(|r| r.completed_at.is_none())
                    .max_by_key(|r| r.updated_at)
                    .map(|r| r.email.clone())
            })
            .filter(|e| Some(e) != failure.email.as_ref()),
        other_is_account: account.is_some(),
        photos: account
            .iter()
            .map(|a| (a.email.clone(), a.ktp_upload_id.clone()))
            .chain(
                registrations
                    .iter()
                    .filter(|r| r.completed_at.is_none())
                    .map(|r| (r.email.clone(), r.ktp_upload_id.clone())),
            )
            .collect(),
        failure,
        notice,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    note: String,
}

/// `POST /staff/failures/{reference}/{action}`: `note`, `resolve`, `resend`.
pub async fn failure_action(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let (reference, action) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    let back = format!("/staff/failures/{reference}");
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other(&back));
    }
    let lookup = reference.clone();
    let failure = state
        .db(move |conn| crate::failures::find(conn, &lookup))
        .await?
        .ok_or(AppError::NotFound)?;
    let now = crate::mail::now();
    let done = match action.as_str() {
        "note" => {
            let note: String = form.note.trim().chars().take(2000).collect();
            if note.is_empty() {
                return Ok(see_other(&back));
            }
            let (r, e) = (reference.clone(), staff.email.clone());
            state
                .db(move |conn| staff_db::add_note(conn, &r, &e, &note, now))
                .await?;
            "note"
        }
        "resolve" => {
            let (r, e) = (reference.clone(), staff.email.clone());
            state
                .db(move |conn| staff_db::resolve(conn, &r, &e, now))
                .await?;
            "resolved"
        }
        "resend" => {
            // The account as the detail page finds it: by this email, or
            // else by this NIK.
            let (email, hash) = (failure.email.clone(), failure.nik_hash.clone());
            let address = state
                .db(move |conn| -> Result<Option<String>, AppError> {
                    let mut account = match &email {
                        Some(email) => crate::db::accounts::find_by_email(conn, email)?,
                        None => None,
                    };
                    if account.is_none()
                        && let Some(hash) = &hash
                    {
                        account = crate::db::accounts::find_by_nik_hash(conn, hash)?;
                    }
                    // No account: the registration waiting under this email,
                    // or else the newest one waiting under this NIK.
                    if account.is_none() {
                        let waiting = crate::db::registrations::find_related(
                            conn,
                            email.as_deref(),
                            hash.as_deref(),
                        )?;
                        return Ok(waiting
                            .into_iter()
                            .filter(|r| r.completed_at.is_none())
                            .max_by_key(|r| r.updated_at)
                            .map(|r| r.email));
                    }
                    Ok(account.map(|a| a.email))
                })
                .await?;
            let Some(email) = address
                .as_deref()
                .and_then(|e| crate::domain::Email::parse(e).ok())
            else {
                return Ok(see_other(&format!("{back}?done=nothing")));
            };
            use crate::routes::verify::ResendResult;
            match crate::routes::verify::resend_verification(&state, &email, Lang::Id).await? {
                ResendResult::Sent => "resent",
                ResendResult::Cooldown => "cooldown",
                ResendResult::NothingWaiting => "nothing",
            }
        }
        _ => return Err(AppError::NotFound),
    };
    audit(&state, &staff, &format!("failure_{action}"), reference).await?;
    Ok(see_other(&format!("{back}?done={done}")))
}

// ---------------------------------------------------------------- KTP photo

/// `GET /staff/failures/{reference}/photo/{upload}`: the KTP photo of the
/// citizen a failure is about (an account or registration under the same
/// email or NIK), to settle "my NIK is already used" calls. Staff only,
/// never cached, every view audited.
pub async fn failure_photo(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let Some(staff) = current_staff(&req, &state).await? else {
        return Err(AppError::Forbidden);
    };
    let (reference, upload) = path.into_inner();
    let reference = reference.to_ascii_uppercase();
    if uuid::Uuid::parse_str(&upload).is_err() {
        return Err(AppError::NotFound);
    }
    let (lookup, id) = (reference.clone(), upload.clone());
    let photo = state
        .db(move |conn| -> Result<_, AppError> {
            let Some(failure) = crate::failures::find(conn, &lookup)? else {
                return Ok(None);
            };
            let owners = crate::db::accounts::upload_owners(conn, &id)?;
            let related = owners.iter().any(|(email, nik_hash)| {
                failure.email.as_ref() == Some(email)
                    || (nik_hash.is_some() && failure.nik_hash == *nik_hash)
            });
            if !related {
                return Ok(None);
            }
            Ok(crate::db::accounts::find_upload(conn, &id)?)
        })
        .await?;
    let Some((content_type, data)) = photo else {
        return Err(AppError::NotFound);
    };
    audit(
        &state,
        &staff,
        "view_ktp_photo",
        format!("{reference} {upload}"),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-store, private"))
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "inline; filename=\"ktp.jpg\"",
        ))
        .body(data))
}

// ---------------------------------------------------------------- stats

pub struct Segment {
    pub y: i64,
    pub height: i64,
    pub color: &'static str,
    pub label: String,
}

pub struct Bar {
    pub x: i64,
    pub day: String,
    pub total: i64,
    pub segments: Vec<Segment>,
}

#[derive(Template)]
#[template(path = "staff/stats.html")]
struct StatsPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    from: String,
    to: String,
    error: Option<&'static str>,
    bars: Vec<Bar>,
    bar_width: i64,
    legend: Vec<(&'static str, &'static str)>,
    /// Table: one row per day, one column per reason in `legend`.
    table: Vec<(String, Vec<i64>, i64)>,
    /// The value axis: (y, label) of each tick.
    ticks: Vec<(i64, i64)>,
    /// Sign-in and link problems, apart from failed registrations.
    access_columns: Vec<&'static str>,
    access_table: Vec<(String, Vec<i64>, i64)>,
}

const COLORS: [&str; 15] = [
    "#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#b58840", "#912b88", "#28a197",
    "#505a5f", "#5694ca", "#85994b", "#f499be", "#003078", "#6f72af", "#942514",
];
const CHART_HEIGHT: i64 = 200;
const CHART_WIDTH: i64 = 600;

#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub async fn stats(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let t = ctx.t;
    let lang = ctx.lang;
    let today = (chrono::Utc::now() + Duration::hours(WIB_HOURS)).date_naive();
    let parse = |text: &str, default: NaiveDate| {
        if text.trim().is_empty() {
            Ok(default)
        } else {
            staff_date(text).ok_or(t.staff_bad_date)
        }
    };
    let range = parse(&query.from, today - Duration::days(6))
        .and_then(|from| parse(&query.to, today).map(|to| (from, to)))
        .and_then(|(from, to)| {
            if to < from {
                Err(t.staff_reversed_range)
            } else if (to - from).num_days() > 92 {
                Err(t.staff_bad_range)
            } else {
                Ok((from, to))
            }
        });
    let (from, to, error) = match range {
        Ok((from, to)) => (from, to, None),
        Err(e) => (today - Duration::days(6), today, Some(e)),
    };
    let counts = state
        .db(move |conn| {
            staff_db::counts_by_day(
                conn,
                wib_day_start(from),
                wib_day_start(to + Duration::days(1)),
            )
        })
        .await?;

    // day -> reason -> n, every day of the range present.
    let mut by_day: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut day = from;
    while day <= to {
        by_day.insert(day.format("%Y-%m-%d").to_string(), BTreeMap::new());
        day += Duration::days(1);
    }
    for c in counts {
        by_day.entry(c.day).or_default().insert(c.reason, c.n);
    }
    // Sign-in and link problems are counted apart (not failed sign-ups).
    let access_columns: Vec<&'static str> = reason::ACCESS
        .iter()
        .copied()
        .filter(|r| by_day.values().any(|m| m.contains_key(*r)))
        .collect();
    let access_table = by_day
        .iter()
        .map(|(day, reasons)| {
            let counts: Vec<i64> = access_columns
                .iter()
                .map(|r| reasons.get(*r).copied().unwrap_or(0))
                .collect();
            let total = counts.iter().sum();
            (day.clone(), counts, total)
        })
        .collect();
    for reasons in by_day.values_mut() {
        reasons.retain(|r, _| !reason::ACCESS.contains(&r.as_str()));
    }
    let legend: Vec<(&'static str, &'static str)> = reason::ALL
        .iter()
        .enumerate()
        .filter(|(_, r)| by_day.values().any(|m| m.contains_key(**r)))
        .map(|(i, r)| (COLORS[i % COLORS.len()], *r))
        .collect();
    let max_total = by_day
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    // A round top for the value axis (1, 2 or 5 times a power of ten).
    let top = {
        let mut step = 1;
        loop {
            if let Some(top) = [step, 2 * step, 5 * step]
                .into_iter()
                .find(|t| *t >= max_total)
            {
                break top;
            }
            step *= 10;
        }
    };
    let max_total = top;
    let mut values = vec![0, top / 2, top];
    values.dedup();
    let ticks = values
        .into_iter()
        .map(|v| (CHART_HEIGHT - v * CHART_HEIGHT / top, v))
        .collect::<Vec<_>>();
    let bar_width = (CHART_WIDTH / by_day.len().max(1) as i64).clamp(4, 80);
    let bars = by_day
        .iter()
        .enumerate()
        .map(|(i, (day, reasons))| {
            let mut y = CHART_HEIGHT;
            let segments = legend
                .iter()
                .filter_map(|(color, r)| {
                    let n = *reasons.get(*r)?;
                    let height = (n * CHART_HEIGHT / max_total).max(1);
                    y -= height;
                    Some(Segment {
                        y,
                        height,
                        color,
                        label: format!("{day}: {} {n}", reason_label(r, lang)),
                    })
                })
                .collect();
            Bar {
                x: i as i64 * bar_width,
                day: day[5..].to_string(),
                total: reasons.values().sum(),
                segments,
            }
        })
        .collect();
    let table = by_day
        .iter()
        .map(|(day, reasons)| {
            let counts: Vec<i64> = legend
                .iter()
                .map(|(_, r)| reasons.get(*r).copied().unwrap_or(0))
                .collect();
            (day.clone(), counts, reasons.values().sum())
        })
        .collect();
    let page = StatsPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        error,
        bars,
        bar_width,
        legend: legend
            .iter()
            .map(|(c, r)| (*c, reason_label(r, lang)))
            .collect(),
        table,
        ticks,
        access_columns: access_columns
            .iter()
            .map(|r| reason_label(r, lang))
            .collect(),
        access_table,
        ctx,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.ctx.render(status, &page)
}

// ---------------------------------------------------------------- audit

#[derive(Template)]
#[template(path = "staff/audit.html")]
struct AuditPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    entries: Vec<(String, String, String, String)>,
}

pub async fn audit_log(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let lang = ctx.lang;
    let staff = staff_or_login!(req, state);
    let entries = state
        .db(move |conn| staff_db::recent_audit(conn, 500))
        .await?;
    let page = AuditPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        entries: entries
            .into_iter()
            .map(|e| {
                let action = crate::i18n::audit_action_label(&e.action, lang).to_string();
                (wib(e.at), e.staff_email, action, e.target)
            })
            .collect(),
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let mut out = String::new();
        csv_line(
            &mut out,
            &["plain", "a,b", "say \"hi\"", "=HYPERLINK(1)", "-1"],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",'=HYPERLINK(1),'-1\r\n"
        );
    }

    #[test]
    fn references_are_recognised() {
        assert!(is_reference("DFT-7K3Q-9XWZ"));
        assert!(is_reference("dft-7k3q-9xwz"));
        assert!(!is_reference("budi@example.com"));
        assert!(!is_reference("3201011708900003"));
    }
}
