//! Who may do what, as axum extractors. A handler states what it needs by the
//! extractor it takes, and runs only for a request that has it:
//!
//! | extractor | credential | refused with |
//! |---|---|---|
//! | [`Reader`] | the operators' token as a bearer token (unless `http.protect_reads = false`) | `{"error": …}` 401/403 |
//! | [`Writer`] | the operators' token as a bearer token | `{"error": …}` 401/403 |
//! | [`PullConsumer`] | that pull consumer's own token, for its own `/api/pull/<name>` paths only | `{"error": …}` 401, the same for any name |
//! | [`PageReader`] | a bearer token or the status page's session cookie | the sign-in page |
//! | [`PageWriter`] | as `PageReader`, and the form posted from this site | a "not allowed" page |
//!
//! The session cookie holds `<expiry>.<random id>.<HMAC-SHA256 of both, keyed
//! with the API token>`: never the token itself, useless after it expires,
//! the token changes or it is signed out (its id is then listed in the
//! ledger, so every instance refuses it), and not accepted by `/api/*`.

use axum::{
    extract::{FromRequestParts, Path},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::Response,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{page, ApiError, Surface};
use crate::config::Secret;

/// The cookie the status page keeps its session in.
pub(super) const SESSION_COOKIE: &str = "order_sync_session";
/// How long a status page session lasts.
pub(super) const SESSION_HOURS: i64 = 12;

/// What a request may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

/// The request may read.
pub(super) struct Reader;

/// The request carries the operators' token.
pub(super) struct Writer;

/// The request is a pull consumer's, on its own path; holds its name.
pub(super) struct PullConsumer(pub(super) String);

/// [`Reader`] for the status page: refused with the sign-in page.
pub(super) struct PageReader;

/// [`Writer`] for the status page's forms: refused with a "not allowed" page.
pub(super) struct PageWriter;

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The bearer token of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

fn session_mac(token: &Secret, expires: i64, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("order-sync status page session {id} until {expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The signature of a status page notice: the page shows a notice only
/// when it made it, so a link cannot put an attacker's words on the page.
pub(super) fn sign_notice(token: &Secret, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("order-sync status page notice: {text}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `sig` is this page's signature of `text`.
pub(super) fn notice_is_ours(token: &Secret, text: &str, sig: &str) -> bool {
    !token.is_empty() && same(&sign_notice(token, text), sig)
}

/// A session value for the status page's cookie, valid until `expires` (unix
/// time), with a random id of its own.
pub(super) fn new_session(token: &Secret, expires: i64) -> String {
    let id = hex::encode(rand::random::<[u8; 16]>());
    format!("{expires}.{id}.{}", session_mac(token, expires, &id))
}

/// A session the cookie proves: its id and when it expires.
pub(super) struct Session {
    pub(super) id: String,
    pub(super) expires: i64,
}

/// The session `value` proves, if it is one of ours and not expired at
/// `now` (whether it was signed out is the ledger's to say).
fn valid_session(token: &Secret, value: &str, now: i64) -> Option<Session> {
    let mut parts = value.splitn(3, '.');
    let (expires, id, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let expires = expires.parse::<i64>().ok()?;
    (expires > now
        && id.len() == 32
        && !token.is_empty()
        && same(mac, &session_mac(token, expires, id)))
    .then(|| Session {
        id: id.to_owned(),
        expires,
    })
}

impl Surface {
    /// Lets the request through, or says why not: 403 when no token is
    /// configured for what it needs, 401 when the token is missing or wrong.
    /// The status page's session counts only when `page` is set.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        access: Access,
        page: bool,
    ) -> Result<(), ApiError> {
        let http = &self.http;
        if access == Access::Read && !http.protect_reads {
            return Ok(());
        }
        if http.api_token.is_empty() {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                match access {
                    Access::Write => "changes over HTTP are off: no http.api_token is configured",
                    Access::Read => "reading is protected (http.protect_reads) and no http.api_token is configured",
                }
                .into(),
            ));
        }
        if let Some(t) = bearer(headers) {
            return if same(t, http.api_token.expose()) {
                Ok(())
            } else {
                Err(ApiError(StatusCode::UNAUTHORIZED, "wrong token".into()))
            };
        }
        if page {
            if let Some(session) = self.session(headers) {
                match self.deps.ledger.session_revoked(&session.id).await {
                    Ok(false) => return Ok(()),
                    Ok(true) => {}
                    // Fail closed: a ledger that cannot say is no sign-in.
                    Err(e) => {
                        tracing::warn!(error = %e, "Could not check a status page session against the ledger.")
                    }
                }
            }
        }
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required (Authorization: Bearer <http.api_token>)".into(),
        ))
    }

    /// The session the request's cookie proves, signed out or not.
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let value = session_cookie(headers)?;
        valid_session(&self.http.api_token, &value, chrono::Utc::now().timestamp())
    }

    /// Whether the page may show its buttons enabled.
    pub(super) async fn may_write(&self, headers: &HeaderMap) -> bool {
        self.authorize(headers, Access::Write, true).await.is_ok()
    }

    /// Whether `token` is the operators' token (the page's sign-in form).
    pub(super) fn is_api_token(&self, token: &str) -> bool {
        !self.http.api_token.is_empty() && same(token, self.http.api_token.expose())
    }
}

/// A state-changing form must come from this site: a browser says where a
/// request comes from (`Sec-Fetch-Site`, `Origin`); one sent from another
/// site with the operator's cookie is refused. Also the sign-in form's check.
pub(super) fn same_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |what: &str| {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("refused: the form was sent from another site ({what})"),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return refused(&format!("Sec-Fetch-Site: {site}"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = url::Url::parse(origin)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_default();
        if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return refused(&format!("Origin: {origin}"));
        }
    }
    Ok(())
}

impl FromRequestParts<Surface> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, ApiError> {
        s.authorize(&parts.headers, Access::Read, false)
            .await
            .map(|()| Reader)
    }
}

impl FromRequestParts<Surface> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, ApiError> {
        s.authorize(&parts.headers, Access::Write, false)
            .await
            .map(|()| Writer)
    }
}

impl FromRequestParts<Surface> for PullConsumer {
    type Rejection = ApiError;

    /// Only a consumer listed in `consumers.pull`, only with its own token:
    /// the operators' token does not fetch or ack for a consumer, and one
    /// consumer's token does not work on another's path.
    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, ApiError> {
        let Path(consumer) = Path::<String>::from_request_parts(parts, s)
            .await
            .map_err(|_| ApiError(StatusCode::NOT_FOUND, "no such consumer".into()))?;
        // One answer for every failure, whatever the name: without its
        // token, nobody can tell a pull consumer from a push one or from a
        // name that does not exist (403/404 let names be enumerated).
        let refused = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid token of this path's pull consumer is required \
                 (consumers.<name>.token, with <name> in consumers.pull)"
                    .into(),
            )
        };
        let c = &s.deps.consumers;
        let token = (c.names.contains(&consumer) && c.is_pull(&consumer))
            .then(|| c.options(&consumer).token.expose())
            .filter(|t| !t.is_empty());
        match (bearer(&parts.headers), token) {
            (Some(given), Some(token)) if same(given, token) => Ok(PullConsumer(consumer)),
            _ => Err(refused()),
        }
    }
}

impl FromRequestParts<Surface> for PageReader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, Response> {
        s.authorize(&parts.headers, Access::Read, true)
            .await
            .map(|()| PageReader)
            .map_err(|e| page::login_page(s, e))
    }
}

impl FromRequestParts<Surface> for PageWriter {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Surface) -> Result<Self, Response> {
        same_site(&parts.headers).map_err(page::refused)?;
        s.authorize(&parts.headers, Access::Write, true)
            .await
            .map(|()| PageWriter)
            .map_err(page::refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_token() {
        let token = Secret::new("operators-token-0123456789");
        let value = new_session(&token, 2_000);
        assert!(!value.contains(token.expose()));
        assert!(valid_session(&token, &value, 1_999).is_some());
        assert!(valid_session(&token, &value, 2_000).is_none());
        assert!(valid_session(&Secret::new("another-token-0123456789"), &value, 1_000).is_none());
        let forged = value.replacen("2000", "9999", 1);
        assert!(valid_session(&token, &forged, 1_000).is_none());
        assert!(valid_session(&token, token.expose(), 1_000).is_none());
        // Each sign-in is a session of its own: signing one out ends only it.
        let other = new_session(&token, 2_000);
        let (a, b) = (
            valid_session(&token, &value, 1_000).unwrap().id,
            valid_session(&token, &other, 1_000).unwrap().id,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_form_from_another_site_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:9464".parse().unwrap());
        assert!(same_site(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:9464".parse().unwrap());
        assert!(same_site(&h).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(same_site(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_site(&h).is_err());
    }
}
