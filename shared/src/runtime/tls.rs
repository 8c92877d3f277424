//! One TLS client configuration per process: the system's root certificates are loaded and
//! parsed once, into one rustls `ClientConfig` that the AWS SDK clients
//! ([`super::aws::load`]) and the outbound HTTP client ([`crate::egress::HttpClient`]) share.
//! Without it the SDK and reqwest each load the system store (issue 18).
//!
//! `WAGATE_EXTRA_CA_FILE`, when set, names a PEM file of further root certificates to trust
//! beside the system's (a local TLS front for moto_server in the cold-start benchmark, a
//! corporate proxy). Unset or empty: the system store only.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The environment variable naming a PEM file of extra trusted roots.
pub const EXTRA_CA_ENV: &str = "WAGATE_EXTRA_CA_FILE";

/// Why the process's TLS configuration could not be built (an init error).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{EXTRA_CA_ENV}={path}: {reason}")]
    ExtraCa { path: String, reason: String },
    #[error(
        "no trusted root certificate: the system store is empty or unreadable and {EXTRA_CA_ENV} is not set"
    )]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
static STORE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// The process's TLS client configuration, built on first use from the system store and
/// `WAGATE_EXTRA_CA_FILE`.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let extra = std::env::var_os(EXTRA_CA_ENV).filter(|v| !v.is_empty());
    let built = Arc::new(build(extra.as_deref().map(Path::new))?);
    // Two first uses racing build twice; one wins, and every caller gets the winner.
    Ok(CONFIG.get_or_init(|| built).clone())
}

/// How many times this process has loaded the system certificate store (1 after init).
pub fn system_store_loads() -> usize {
    STORE_LOADS.load(Ordering::Relaxed)
}

/// A configuration trusting the system store plus the PEM certificates in `extra_ca`.
pub fn build(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    // The extra file first: a bad one fails before the system store is read.
    let extra = match extra_ca {
        Some(path) => Some((path, extra_roots(path)?)),
        None => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    STORE_LOADS.fetch_add(1, Ordering::Relaxed);
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 || !native.errors.is_empty() {
        tracing::debug!(
            added,
            ignored,
            errors = native.errors.len(),
            "some system root certificates were not loaded"
        );
    }
    if let Some((path, extra)) = extra {
        for cert in extra {
            roots.add(cert).map_err(|e| TlsError::ExtraCa {
                path: path.display().to_string(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn extra_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::ExtraCa {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_and_one_store_load_per_process() {
        let a = client_config().unwrap();
        let b = client_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(system_store_loads(), 1);
    }

    #[test]
    fn an_extra_ca_file_that_is_missing_or_not_pem_fails_with_its_name() {
        let missing = std::env::temp_dir().join(format!("wagate-no-ca-{}", std::process::id()));
        let err = build(Some(&missing)).unwrap_err();
        assert!(
            matches!(&err, TlsError::ExtraCa { path, .. } if path.contains("wagate-no-ca-")),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("WAGATE_EXTRA_CA_FILE="),
            "{err}"
        );

        let not_pem = std::env::temp_dir().join(format!("wagate-bad-ca-{}", std::process::id()));
        std::fs::write(&not_pem, "just text\n").unwrap();
        let err = build(Some(&not_pem)).unwrap_err();
        std::fs::remove_file(&not_pem).unwrap();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }
}
