//! HTTP handlers, one module per page or resource.

pub mod home;
pub mod ops;

use actix_web::web;

use crate::errors::AppError;

/// Registers every route of the portal.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page("/", home::get))
        .service(page("/healthz", ops::healthz))
        .service(page("/readyz", ops::readyz))
        .service(page("/metrics", ops::metrics))
        .service(page("/static/{path:.+}", crate::assets::serve));
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

/// Fallback for every path no route matches.
pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}
