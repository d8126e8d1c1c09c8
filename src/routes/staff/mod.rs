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

use crate::domain::email_mask;
use crate::error::AppError;
use crate::i18n::{Lang, reason_label};
use crate::services::failures::{FailureRow, reason};
use crate::services::sessions::STAFF as STAFF_SESSION;
use crate::services::staff::failures::{Cursor, FailureFilter};
use crate::services::staff::sign_in::Staff;
use crate::state::AppState;
use crate::web::see_other;
use crate::web::{Page, PageCtx};
pub const STAFF_COOKIE: &str = "emeterai_staff";
const PAGE_SIZE: i64 = 50;
/// Indonesia's western time zone, in which staff read times and days.
use crate::clock::WIB_HOURS;

fn staff_cookie(key: &Key, value: String, secure: bool) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(
        Cookie::build(STAFF_COOKIE, value)
            .path("/staff")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(CookieDuration::hours(STAFF_SESSION.hours))
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
    if expires < state.clock.timestamp() {
        return Ok(None);
    }
    let found = crate::services::staff::sign_in::session_staff(
        &state.services(),
        id.to_string(),
        epoch,
        sid.to_string(),
        state.clock.now(),
    )
    .await?;
    Ok(found.map(|s| StaffUser {
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
    crate::services::staff::audit(
        &state.services(),
        &staff.email,
        action,
        target,
        state.clock.now(),
    )
    .await
}

/// The staff member behind a request for a citizen's photo: anyone else
/// is refused (403), not sent to the sign-in page.
async fn staff_only(req: &HttpRequest, state: &web::Data<AppState>) -> Result<StaffUser, AppError> {
    current_staff(req, state).await?.ok_or(AppError::Forbidden)
}

/// A citizen's photo as staff see it (404 without one): the view audited
/// (`action`, `target`), the photo inline and never cached.
async fn audited_photo(
    state: &web::Data<AppState>,
    staff: &StaffUser,
    photo: Option<(String, Vec<u8>)>,
    action: &str,
    target: String,
) -> Result<HttpResponse, AppError> {
    let Some((content_type, data)) = photo else {
        return Err(AppError::NotFound);
    };
    audit(state, staff, action, target).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-store, private"))
        .insert_header((CONTENT_DISPOSITION, "inline; filename=\"photo.jpg\""))
        .body(data))
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
    crate::clock::wib_text(at)
}

mod audit;
mod cases;
mod code;
mod detail;
mod export;
mod failures;
mod requests;
mod session;
mod stats;
mod status;

pub use audit::audit_log;
pub use cases::{case, case_action, case_photo, cases};
pub use code::{get as code_get, post as code_post};
pub use detail::{failure, failure_action, failure_photo};
pub use export::failures_csv;
pub use failures::failures;
pub use requests::{request, request_action, request_photo, requests};
pub use session::{login_get, login_post, logout};
pub use stats::stats;
pub use status::{status_action, status_notice};
