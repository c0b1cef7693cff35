//! Who may do what, as axum extractors: a handler that takes [`Reader`] or
//! [`Writer`] runs only for a request with the access it needs, and is
//! answered with `{"error": …}` (401/403) otherwise. The status page's
//! handlers take [`PageReader`] and [`PageWriter`], which answer with a page
//! (the sign-in form, or "not allowed") instead.

use axum::{extract::FromRequestParts, http::request::Parts, response::Response};

use super::{page, Access, ApiError, Surface};

/// The request may read (always, unless `http.protect_reads`).
pub(super) struct Reader;

/// The request carries the API token.
pub(super) struct Writer;

impl FromRequestParts<Surface> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, ApiError> {
        s.authorize(&parts.headers, Access::Read).map(|()| Reader)
    }
}

impl FromRequestParts<Surface> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, ApiError> {
        s.authorize(&parts.headers, Access::Write).map(|()| Writer)
    }
}

/// [`Reader`] for the status page: refused with the sign-in page.
pub(super) struct PageReader;

/// [`Writer`] for the status page's forms: refused with a "not allowed" page.
pub(super) struct PageWriter;

impl FromRequestParts<Surface> for PageReader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, Response> {
        s.authorize(&parts.headers, Access::Read)
            .map(|()| PageReader)
            .map_err(|e| page::login_page(s, e))
    }
}

impl FromRequestParts<Surface> for PageWriter {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, Response> {
        s.authorize(&parts.headers, Access::Write)
            .map(|()| PageWriter)
            .map_err(page::refused)
    }
}
