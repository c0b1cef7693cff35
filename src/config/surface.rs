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
    /// Bearer token for changes (resync, pause, un-park, HTTP acks); empty: refused.
    pub api_token: Secret,
    /// Require the token for reading too (API, status page); `/healthz`, `/readyz`, `/metrics` stay open.
    pub protect_reads: bool,
}

impl HttpSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.api_token.is_empty() || self.api_token.expose().len() >= 16,
            "http.api_token",
            "must be at least 16 characters (or empty to refuse changes over HTTP)",
        );
    }
}

/// What goes into the order message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSettings {
    /// Fields removed from every order before publishing (paths like `payment.cc_number_enc`).
    pub deny_fields: Vec<String>,
}

impl MessageSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        for field in &self.deny_fields {
            p.check(
                !field.is_empty()
                    && field.split('.').all(|seg| !seg.is_empty())
                    && !field.trim_end_matches('*').contains('*'),
                "message.deny_fields",
                format!(
                    "`{field}` is not a field path like `payment.cc_number_enc` (a `*` may end it)"
                ),
            );
        }
    }
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
