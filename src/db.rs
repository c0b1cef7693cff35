//! Connection pools for the two MySQL/MariaDB databases, built from a
//! [`SecretUrl`] so that a bad URL is reported without its password.

use std::time::Duration;

use mysql_async::{prelude::*, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::config::SecretUrl;

/// A database URL mysql_async cannot use.
#[derive(Debug, thiserror::Error)]
#[error("invalid database URL {url}: {reason}")]
pub struct DbUrlError {
    pub url: String,
    pub reason: String,
}

/// Builds a pool; connects lazily, so this succeeds while the server is down.
/// `init` runs on every new connection (session settings such as the time zone).
pub fn pool(url: &SecretUrl, max: usize, init: Vec<String>) -> Result<Pool, DbUrlError> {
    Ok(Pool::new(pool_opts(url, max, init)?))
}

/// The options [`pool`] uses, for connections that must not be pooled (a
/// connection holding a named lock must never be handed to someone else).
///
/// Besides mysql_async's own URL parameters (`require_ssl`, `verify_ca`,
/// `verify_identity`, `socket`, ...), `ssl_ca=/path/ca.pem` names a CA
/// certificate (PEM) to trust besides the public roots: a database whose
/// certificate a private CA signed.
pub fn pool_opts(url: &SecretUrl, max: usize, init: Vec<String>) -> Result<Opts, DbUrlError> {
    let (url_text, ssl_ca) = take_ssl_ca(url)?;
    let opts = Opts::from_url(&url_text).map_err(|e| DbUrlError {
        url: url.redacted(),
        // mysql_async's URL errors quote the URL; say only what kind of error it is.
        reason: match e {
            mysql_async::UrlError::UnsupportedScheme { scheme } => {
                format!("unsupported scheme `{scheme}`")
            }
            mysql_async::UrlError::Invalid => "not a URL".into(),
            mysql_async::UrlError::UnknownParameter { param } => {
                format!("unknown parameter `{param}`")
            }
            mysql_async::UrlError::InvalidParamValue { param, .. } => {
                format!("invalid value for parameter `{param}`")
            }
            other => other.to_string(),
        },
    })?;
    let ssl = ssl_ca.map(|ca| {
        opts.ssl_opts()
            .cloned()
            .unwrap_or_default()
            .with_root_certs(vec![ca.into()])
    });
    let constraints = PoolConstraints::new(0, max.max(1)).expect("0 <= max");
    let mut builder = OptsBuilder::from_opts(opts).init(init).pool_opts(
        PoolOpts::default()
            .with_constraints(constraints)
            // Idle connections are closed so a restarted server is met with fresh ones.
            .with_inactive_connection_ttl(Duration::from_secs(60))
            // No reset on return to the pool: it costs every use a reset and the
            // init statements again (three round trips; an idle poll's cost was
            // mostly these). Pooled connections carry no session state: named
            // locks and the binlog stream use connections of their own, and
            // transaction settings apply to one transaction only.
            .with_reset_connection(false)
            .with_ttl_check_interval(Duration::from_secs(30)),
    );
    if let Some(ssl) = ssl {
        builder = builder.ssl_opts(Some(ssl));
    }
    Ok(builder.into())
}

/// The URL without its `ssl_ca` parameter, and that file, checked to exist.
fn take_ssl_ca(url: &SecretUrl) -> Result<(String, Option<std::path::PathBuf>), DbUrlError> {
    let Ok(mut parsed) = url::Url::parse(url.expose()) else {
        return Ok((url.expose().to_owned(), None));
    };
    let mut ca = None;
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "ssl_ca" {
                ca = Some(std::path::PathBuf::from(v.as_ref()));
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    let Some(ca) = ca else {
        return Ok((url.expose().to_owned(), None));
    };
    if !ca.is_file() {
        return Err(DbUrlError {
            url: url.redacted(),
            reason: format!("ssl_ca: no such file {}", ca.display()),
        });
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.to_string(), Some(ca)))
}

/// The database name in a MySQL URL (validated non-empty at config load).
pub fn database_name(url: &SecretUrl) -> Option<String> {
    url::Url::parse(url.expose())
        .ok()
        .map(|u| u.path().trim_matches('/').to_owned())
        .filter(|s| !s.is_empty())
}

/// Why a database could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Url(#[from] DbUrlError),
    #[error(transparent)]
    Db(#[from] mysql_async::Error),
}

/// Creates the database a URL names, if it does not exist (utf8mb4), by
/// connecting to the server without selecting it.
pub async fn create_database(url: &SecretUrl) -> Result<(), CreateError> {
    let Some(name) = database_name(url) else {
        return Ok(());
    };
    let mut server = url::Url::parse(url.expose()).map_err(|e| DbUrlError {
        url: url.redacted(),
        reason: e.to_string(),
    })?;
    server.set_path("/");
    let pool = pool(&SecretUrl::new(server.to_string()), 1, vec![])?;
    let result = async {
        pool.get_conn()
            .await?
            .query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
                name.replace('`', "``")
            ))
            .await
    }
    .await;
    let _ = pool.disconnect().await;
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_and_socket_options_in_mysql_urls_are_accepted() {
        for url in [
            "mysql://u:p@db.example:3306/magento?require_ssl=true",
            "mysql://u:p@db.example:3306/magento?require_ssl=true&verify_ca=false&verify_identity=false",
            "mysql://u@localhost/magento?socket=/run/mysqld/mysqld.sock",
        ] {
            let pool = pool(&SecretUrl::new(url), 2, vec![]).unwrap_or_else(|e| panic!("{url}: {e}"));
            drop(pool);
        }
    }

    #[test]
    fn a_private_ca_file_is_taken_from_the_url_and_must_exist() {
        let ca = std::env::temp_dir().join(format!("order-sync-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "not checked here").unwrap();
        let url = format!(
            "mysql://u:p@db.example/magento?require_ssl=true&ssl_ca={}",
            ca.display()
        );
        let opts = pool_opts(&SecretUrl::new(url), 2, vec![]).unwrap();
        let ssl = opts.ssl_opts().expect("TLS on");
        assert_eq!(ssl.root_certs().len(), 1);
        std::fs::remove_file(&ca).unwrap();
        let missing = pool_opts(
            &SecretUrl::new("mysql://u:hunter2@db/m?require_ssl=true&ssl_ca=/nonexistent.pem"),
            2,
            vec![],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            missing.contains("ssl_ca: no such file /nonexistent.pem"),
            "{missing}"
        );
        assert!(!missing.contains("hunter2"), "{missing}");
    }

    #[test]
    fn a_bad_parameter_is_named_without_the_password() {
        let err = match pool(
            &SecretUrl::new("mysql://u:hunter2@db/magento?colour=blue"),
            2,
            vec![],
        ) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted an unknown parameter"),
        };
        assert!(err.contains("colour"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
