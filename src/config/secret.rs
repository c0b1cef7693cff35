//! Values that may hold a secret: shown redacted in every `Debug`, `Display`
//! and error message, and handed out only to the client library that needs them.

use std::fmt;

use serde::Deserialize;

use super::Problems;

/// A secret such as a token: never shown in logs or `Debug` output.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// No secret.
    pub const EMPTY: Secret = Secret(String::new());

    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { "***" })
    }
}

/// A connection URL that may hold a password. Shown redacted everywhere.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password; only for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    // Cannot fail: a URL with a password has a host.
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            }
            // Unparseable: show nothing that could be a secret.
            Err(_) => "<unparseable url>".into(),
        }
    }

    fn parsed(&self) -> Result<url::Url, String> {
        url::Url::parse(&self.0).map_err(|e| format!("not a valid URL ({e}): {}", self.redacted()))
    }

    /// Checks the URL is one of `schemes`, has a host, and (for `mysql`)
    /// names a database; reports under `key`.
    pub(super) fn check(&self, key: &str, schemes: &[&str], p: &mut Problems) {
        match self.parsed() {
            Ok(u) if !schemes.contains(&u.scheme()) => p.add(
                key,
                format!(
                    "scheme `{}` is not supported, use {}: {}",
                    u.scheme(),
                    schemes.join(" or "),
                    self.redacted()
                ),
            ),
            Ok(u) if u.host_str().unwrap_or("").is_empty() => {
                p.add(key, format!("has no host: {}", self.redacted()))
            }
            Ok(u) if schemes == ["mysql"] && u.path().trim_matches('/').is_empty() => {
                p.add(key, format!("names no database: {}", self.redacted()))
            }
            Ok(_) => {}
            Err(m) => p.add(key, m),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}
