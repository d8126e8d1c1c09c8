//! What every page needs: the language, the texts, asset URLs and contact
//! channels (`PageCtx`), and one way to turn an askama page into a response.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_TYPE, LOCATION, VARY,
};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use askama::Template;

use crate::error::AppError;
use crate::i18n::{LANG_COOKIE, Lang, Text};
use crate::state::{AppState, Contact};

/// Marks a response whose body is already a finished page, so the error-page
/// middleware leaves it alone (e.g. a form returned with status 422).
#[derive(Clone, Copy)]
pub struct Rendered;

pub struct PageCtx {
    pub lang: Lang,
    pub t: &'static Text,
    pub path: String,
    query: String,
    remember_lang: bool,
    secure_cookies: bool,
    /// The browser takes gzip: pages are compressed here, on the worker.
    gzip: bool,
    /// The citizen's session cookie names an account (the header then
    /// leads to the account, not to sign-in; `/account` checks it fully).
    pub signed_in: bool,
    state: web::Data<AppState>,
}

impl PageCtx {
    pub fn from_request(req: &HttpRequest) -> Result<Self, AppError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or(AppError::internal("application state missing"))?;
        let (lang, remember_lang) = request_lang(req);
        let signed_in = {
            use actix_session::SessionExt;
            crate::session::signed_in(&req.get_session()).is_some()
        };
        Ok(PageCtx {
            signed_in,
            lang,
            t: lang.text(),
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            remember_lang,
            gzip: accepts_gzip(req),
            secure_cookies: state.settings.secure_cookies(),
            state,
        })
    }

    /// Content-hashed URL of a static file.
    pub fn asset(&self, name: &str) -> String {
        self.state.assets.url(name)
    }

    pub fn contact(&self) -> &Contact {
        &self.state.contact
    }

    /// The incident notice staff posted, in the page's language, while it
    /// is on (the banner of every citizen page; from memory).
    pub fn notice(&self) -> Option<String> {
        self.state.status.notice().map(|n| match self.lang {
            Lang::Id => n.text_id,
            Lang::En => n.text_en,
        })
    }

    /// The request asked for its language (`?lang=`): the language switch.
    pub fn language_switched(&self) -> bool {
        self.remember_lang
    }

    /// This page in the other language: the same path and query, `lang` replaced.
    pub fn switch_href(&self) -> String {
        let mut query: Vec<&str> = self
            .query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("lang="))
            .collect();
        let lang = format!("lang={}", self.lang.other().code());
        query.push(&lang);
        format!("{}?{}", self.path, query.join("&"))
    }

    /// A response with the page headers (and the language cookie when the
    /// page was asked for in a language).
    fn page_builder(&self, status: StatusCode) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(status);
        builder
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((CONTENT_LANGUAGE, self.lang.code()));
        if self.remember_lang {
            builder.cookie(
                Cookie::build(LANG_COOKIE, self.lang.code())
                    .path("/")
                    .max_age(CookieDuration::days(365))
                    .same_site(SameSite::Lax)
                    .http_only(true)
                    .secure(self.secure_cookies)
                    .finish(),
            );
        }
        builder
    }

    /// Renders a page with the given status. HTML responses are never cached
    /// (`no-store` is added by the default headers), so a citizen never
    /// submits a stale form to a newer server.
    pub fn render<T: Template>(
        &self,
        status: StatusCode,
        page: &T,
    ) -> Result<HttpResponse, AppError> {
        let html = page.render().map_err(AppError::internal)?;
        // Compressed here rather than by the Compress middleware, which
        // hands every body over 1 KB to a blocking thread: on a busy core
        // that hand-over cost more than the page itself.
        let compressed = if self.gzip {
            crate::compress::gzip(html.as_bytes())
        } else {
            None
        };
        Ok(self.respond(status, compressed, || html))
    }

    /// The page response: the gzip body when there is one, else the page as
    /// it is (made only then).
    fn respond(
        &self,
        status: StatusCode,
        compressed: Option<Vec<u8>>,
        plain: impl FnOnce() -> String,
    ) -> HttpResponse {
        let mut builder = self.page_builder(status);
        let mut response = match compressed {
            Some(body) => builder
                .insert_header((CONTENT_ENCODING, "gzip"))
                .insert_header((VARY, "Accept-Encoding"))
                .body(body),
            None => builder.body(plain()),
        };
        response.extensions_mut().insert(Rendered);
        response
    }
}

impl PageCtx {
    /// Renders a page whose only differences between visitors are
    /// `tokens` (a CSRF token, a form id): `page` must have been built with
    /// [`crate::compress::placeholder`]`(i)` in place of `tokens[i]`. Its
    /// fixed text is compressed once per process ([`crate::compress`]).
    pub fn render_spliced<T: Template>(
        &self,
        status: StatusCode,
        page: &T,
        tokens: &[&str],
    ) -> Result<HttpResponse, AppError> {
        let template = page.render().map_err(AppError::internal)?;
        let plain = || crate::compress::Spliced::plain(&template, tokens);
        let compressed = if self.gzip {
            crate::compress::spliced(&template, tokens.len())
                .and_then(|s| s.gzip(tokens))
                .or_else(|| crate::compress::gzip(plain().as_bytes()))
        } else {
            None
        };
        Ok(self.respond(status, compressed, plain))
    }
}

/// The page's language: `?lang=` in the query wins (and is remembered in
/// the `lang` cookie), then the cookie, then Indonesian. Returns the
/// language and whether the query asked for it.
pub fn request_lang(req: &HttpRequest) -> (Lang, bool) {
    if let Some(lang) = Lang::from_query(req.query_string()) {
        return (lang, true);
    }
    let from_cookie = req
        .cookie(LANG_COOKIE)
        .and_then(|c| Lang::from_code(c.value()));
    (from_cookie.unwrap_or_default(), false)
}

/// What the failure log and the limits know of a request: the client's
/// address (the TCP peer, or the first `X-Forwarded-For` entry when
/// EMETERAI_TRUST_PROXY is on), its user agent and the path.
pub fn client(req: &HttpRequest, state: &AppState) -> crate::services::failures::Client {
    let text = if state.settings.trust_proxy {
        req.connection_info()
            .realip_remote_addr()
            .map(str::to_string)
    } else {
        req.peer_addr().map(|a| a.ip().to_string())
    };
    let ip = text.and_then(|text| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    });
    crate::services::failures::Client {
        ip,
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        path: req.path().to_string(),
    }
}

/// Records a failure this request met, under a new reference code
/// starting with `prefix` (see `failures::record`).
pub async fn record_failure(
    state: &AppState,
    req: &HttpRequest,
    prefix: &str,
    failure: crate::services::failures::Failure,
) -> String {
    crate::services::failures::record(&state.services(), &client(req, state), prefix, failure).await
}

/// Whether the request's `Accept-Encoding` takes gzip (`gzip` or `*`,
/// without `q=0`).
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

impl FromRequest for PageCtx {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(PageCtx::from_request(req))
    }
}

/// What a page handler takes from its request, in one extractor: the
/// request itself (the client's address, the staff check), the page's
/// context, the session and the application state, in that order.
/// Handlers take it apart in their signature,
/// `Page(req, ctx, session, state): Page`, with `_` for what they do not
/// use. (A tuple, not named fields: rustfmt keeps it on one line.)
pub struct Page(
    pub HttpRequest,
    pub PageCtx,
    pub actix_session::Session,
    pub web::Data<AppState>,
);

impl FromRequest for Page {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use actix_session::SessionExt;
        ready(PageCtx::from_request(req).map(|ctx| {
            let state = ctx.state.clone();
            Page(req.clone(), ctx, req.get_session(), state)
        }))
    }
}

/// `303 See Other` to `location`: where a form post sends the browser next.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let with = |value: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((ACCEPT_ENCODING, value))
                .to_http_request();
            accepts_gzip(&req)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts_gzip(
            &actix_web::test::TestRequest::default().to_http_request()
        ));
    }
}
