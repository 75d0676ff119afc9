//! Transports: dialing `rtmp://` and `rtmps://` upstreams, and TLS on the listening side.
//!
//! TLS is rustls with the ring provider. Upstream certificates are checked against the system
//! roots, or only against `ca_file` when one is configured (a private CA); the server name sent
//! (SNI) and checked is the URL's host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::connection::BoxTransport;
use super::error::RtmpError;
use super::url::{RtmpUrl, Scheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RtmpError> {
    let pem = std::fs::read(path)
        .map_err(|e| RtmpError::Tls(format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| RtmpError::Tls(format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(RtmpError::Tls(format!(
            "{}: no certificate in file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Client-side TLS settings for `rtmps://` upstreams.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl TlsClient {
    /// Trusts `ca_file` alone when given, else the system's root certificates.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, RtmpError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| RtmpError::Tls(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(RtmpError::Tls(
                        "no system root certificates found (install ca-certificates or set \
                         [upstream] ca_file)"
                            .into(),
                    ));
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| RtmpError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Builds the acceptor for TLS on the listening side from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, RtmpError> {
    let certs = read_certs(cert)?;
    let pem = std::fs::read(key)
        .map_err(|e| RtmpError::Tls(format!("cannot read {}: {e}", key.display())))?;
    let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| RtmpError::Tls(format!("{}: bad PEM: {e}", key.display())))?
        .ok_or_else(|| RtmpError::Tls(format!("{}: no private key in file", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RtmpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| RtmpError::Tls(format!("{} / {}: {e}", cert.display(), key.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Opens the transport to an upstream: TCP with TCP_NODELAY, then TLS for `rtmps://`.
pub async fn dial(
    url: &RtmpUrl,
    tls: Option<&TlsClient>,
    limit: Duration,
) -> Result<BoxTransport, RtmpError> {
    let tcp = tokio::time::timeout(limit, TcpStream::connect(url.authority()))
        .await
        .map_err(|_| RtmpError::Timeout("connecting to upstream"))??;
    tcp.set_nodelay(true)?;
    match url.scheme {
        Scheme::Rtmp => Ok(Box::new(tcp)),
        Scheme::Rtmps => {
            let tls =
                tls.ok_or_else(|| RtmpError::Tls("rtmps:// upstream without TLS settings".into()))?;
            let name = ServerName::try_from(url.host.clone()).map_err(|_| {
                RtmpError::Tls(format!("{:?} is not a valid server name", url.host))
            })?;
            let stream = tokio::time::timeout(limit, tls.connector.connect(name, tcp))
                .await
                .map_err(|_| RtmpError::Timeout("in TLS handshake with upstream"))?
                .map_err(|e| RtmpError::Tls(format!("handshake with {}: {e}", url.authority())))?;
            Ok(Box::new(stream))
        }
    }
}
