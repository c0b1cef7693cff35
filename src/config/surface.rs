//! What order-sync shows and sends: `[http]`, `[message]`, `[log]`.

use serde::Deserialize;

use super::{Problems, Secret};

/// The HTTP surface: status page, JSON API, `/healthz`, `/readyz`, `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve it at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// The operators' bearer token: changes (resync, pause, un-park) and, with
    /// `protect_reads`, reading; empty: changes refused.
    pub api_token: Secret,
    /// Require the token for reading too (API, status page); `/healthz`,
    /// `/readyz`, `/metrics` stay open. On by default: orders hold personal data.
    pub protect_reads: bool,
    /// Most connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send its request headers, and a request
    /// may take in all, before it is cut off.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
}

impl HttpSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.api_token.is_empty() || self.api_token.expose().len() >= 16,
            "http.api_token",
            "must be at least 16 characters (or empty to refuse changes over HTTP)",
        );
        check_token_chars(&self.api_token, "http.api_token", p);
        p.check(
            self.max_connections >= 1,
            "http.max_connections",
            "must be at least 1",
        );
        p.check(
            self.request_timeout >= std::time::Duration::from_secs(1),
            "http.request_timeout",
            "must be at least 1s",
        );
        p.check(
            !self.enabled || self.listen.ip().is_loopback() || !self.api_token.is_empty(),
            "http.listen",
            format!(
                "listening on {} without http.api_token would open order data to anyone \
                 who reaches the port; set http.api_token or listen on 127.0.0.1",
                self.listen
            ),
        );
    }
}

/// A token is sent in headers and compared as bytes: printable ASCII
/// without spaces, quotes, commas, semicolons or backslashes, so it survives
/// an `Authorization` header and a copy-paste.
pub(super) fn check_token_chars(token: &Secret, key: &str, p: &mut Problems) {
    p.check(
        token
            .expose()
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\')),
        key,
        "may only hold printable ASCII without spaces, quotes, commas, semicolons or backslashes",
    );
}

/// What goes into the order message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSettings {
    /// Fields removed from every order before publishing (paths like `payment.cc_number_enc`).
    pub deny_fields: Vec<String>,
    /// `order-sync` (the envelope alone) or `cloudevents` (the same body, with
    /// CloudEvents 1.0 attributes as AMQP headers: binary content mode); per
    /// consumer with `consumers.<name>.format`.
    pub format: MessageFormat,
}

/// How a consumer's messages carry their metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MessageFormat {
    /// The envelope of docs/messages.md, nothing more.
    #[serde(rename = "order-sync")]
    OrderSync,
    /// CloudEvents 1.0, AMQP binding, binary content mode: `cloudEvents_*`
    /// headers, the envelope as the data.
    #[serde(rename = "cloudevents")]
    CloudEvents,
}

impl MessageSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        for field in &self.deny_fields {
            p.check(
                is_field_path(field),
                "message.deny_fields",
                format!(
                    "`{field}` is not a field path like `payment.cc_number_enc` (a `*` may end it)"
                ),
            );
        }
    }
}

/// A path into the order like `payment.cc_number_enc` or `items.*`: dotted
/// names, none empty, a `*` only at the end.
pub(super) fn is_field_path(field: &str) -> bool {
    !field.is_empty()
        && field.split('.').all(|seg| !seg.is_empty())
        && !field.trim_end_matches('*').contains('*')
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl LogSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.filter) {
            p.add("log.filter", e.to_string());
        }
    }
}
