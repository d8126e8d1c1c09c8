//! HTTP handlers, one module per page or resource.

pub mod account;
pub mod assets;
pub mod help;
pub mod home;
pub mod hooks;
pub mod login;
pub mod not_me;
pub mod ops;
pub mod password;
pub mod register;
pub mod report;
pub mod staff;
pub mod status;
pub mod verify;

use actix_web::web;

use crate::error::AppError;

/// Registers every route of the portal.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page("/", home::get))
        .service(page("/healthz", ops::healthz))
        .service(page("/readyz", ops::readyz))
        .service(page("/metrics", ops::metrics))
        .service(page("/status", status::get))
        .service(page("/static/{path:.+}", assets::serve))
        .service(page("/register", register::get).route(web::post().to(register::post::post)))
        .service(page("/register/check-email", register::check_email::get))
        .service(page("/verify", verify::verify).route(web::post().to(verify::choose)))
        .service(web::resource("/verify/resend").route(web::post().to(verify::resend)))
        .service(web::resource("/hooks/mail-events").route(web::post().to(hooks::mail_events)))
        .service(page("/not-me", not_me::show).route(web::post().to(not_me::confirm)))
        .service(
            web::resource("/register/correct-email")
                .route(web::post().to(register::check_email::correct)),
        )
        .service(web::resource("/register/remind").route(web::post().to(register::remind::remind)))
        .service(page("/report", report::form).route(web::post().to(report::post)))
        .service(page("/report/status", report::status))
        .service(web::resource("/report/reply").route(web::post().to(report::reply)))
        .service(page("/login", login::get).route(web::post().to(login::post)))
        .service(web::resource("/logout").route(web::post().to(login::logout)))
        .service(
            web::resource("/logout/everywhere").route(web::post().to(login::logout_everywhere)),
        )
        .service(page("/account", account::account))
        .service(page("/account/photo", account::photo))
        .service(page("/account/correct", account::correct))
        .service(web::resource("/account/phone").route(web::post().to(account::phone)))
        .service(web::resource("/account/email").route(web::post().to(account::email)))
        .service(web::resource("/account/correction").route(web::post().to(account::correction)))
        .service(
            page("/account/email/confirm", account::email_confirm_page)
                .route(web::post().to(account::email_confirm)),
        )
        .service(web::resource("/account/sessions/end").route(web::post().to(account::end_session)))
        .service(
            page("/account/download", account::download_form)
                .route(web::post().to(account::download)),
        )
        .service(
            page("/account/delete", account::delete_form).route(web::post().to(account::delete)),
        )
        .service(
            web::resource("/account/delete/cancel").route(web::post().to(account::cancel_delete)),
        )
        .service(page("/help", help::index))
        .service(page("/help/email-registered", help::email_registered))
        .service(page("/help/connection", help::connection))
        .service(page("/help/ktp-photo", help::ktp_photo))
        .service(page("/terms", help::terms))
        .service(page("/privacy", help::privacy))
        .service(
            page("/password/forgot", password::forgot_get)
                .route(web::post().to(password::forgot_post)),
        )
        .service(
            page("/password/reset", password::reset_get)
                .route(web::post().to(password::reset_post)),
        )
        .service(page("/staff", staff_home))
        .service(page("/staff/login", staff::login_get).route(web::post().to(staff::login_post)))
        .service(page("/staff/login/code", staff::code_get).route(web::post().to(staff::code_post)))
        .service(web::resource("/staff/logout").route(web::post().to(staff::logout)))
        .service(page("/staff/failures", staff::failures))
        .service(page("/staff/failures.csv", staff::failures_csv))
        .service(page("/staff/failures/{reference}", staff::failure))
        .service(
            web::resource("/staff/failures/{reference}/{action}")
                .route(web::post().to(staff::failure_action)),
        )
        .service(page(
            "/staff/failures/{reference}/photo/{upload}",
            staff::failure_photo,
        ))
        .service(page("/staff/cases", staff::cases))
        .service(page("/staff/cases/{reference}", staff::case))
        .service(
            web::resource("/staff/cases/{reference}/{action}")
                .route(web::post().to(staff::case_action)),
        )
        .service(page(
            "/staff/cases/{reference}/photo/{photo}",
            staff::case_photo,
        ))
        .service(page("/staff/requests", staff::requests))
        .service(page("/staff/requests/{id}", staff::request))
        .service(
            web::resource("/staff/requests/{id}/{action}")
                .route(web::post().to(staff::request_action)),
        )
        .service(page(
            "/staff/requests/{id}/photo/{which}",
            staff::request_photo,
        ))
        .service(page("/staff/stats", staff::stats))
        .service(page("/staff/status", staff::status_notice))
        .service(
            web::resource("/staff/status/{action}").route(web::post().to(staff::status_action)),
        )
        .service(page("/staff/audit", staff::audit_log));
}

/// A resource answering GET and HEAD with one handler; any other method
/// gets the 405 page.
pub fn page<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

async fn staff_home() -> actix_web::HttpResponse {
    crate::web::see_other("/staff/failures")
}

/// Fallback for every path no route matches.
pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}
