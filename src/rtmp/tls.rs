//! Transports: dialing `rtmp://` and `rtmps://` upstreams, and TLS on the listening side.
//!
//! TLS is rustls with the ring provider. Who an upstream must be ([`UpstreamTrust`]):
//! - by default, a certificate for the URL's host that chains to the system roots;
//! - with `ca_file`, one that chains to a CA in that file, or is exactly a certificate in it
//!   (a self-signed platform certificate, as `openssl req -x509` makes, is pinned that way:
//!   the file's certificate is the identity, so its name and dates are not checked);
//! - with `pin_sha256`, one whose public key (SPKI) hashes to a pin, whoever signed it.
//!
//! The handshake's signatures are verified in every case. A refusal says what to configure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;
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

/// Who an `rtmps://` upstream must be (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct UpstreamTrust {
    /// PEM certificates: CAs to chain to, or the platform's own certificate(s) to accept as
    /// they are.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the platform's SubjectPublicKeyInfo, base64 (as `curl --pinnedpubkey
    /// sha256//…` and `openssl … | openssl dgst -sha256 -binary | base64` give it) or hex.
    pub pin_sha256: Vec<String>,
}

/// Parses a `pin_sha256` entry: 32 bytes in base64 (an optional `sha256//` prefix, as curl
/// writes it) or hex.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let body = text.strip_prefix("sha256//").unwrap_or(text);
    let bytes = if body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, String>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("{text:?} is neither base64 nor hex: {e}"))?
    };
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "{text:?} is {} bytes; a SHA-256 pin is 32 (base64 of the SPKI's SHA-256)",
            b.len()
        )
    })
}

/// The pin of a certificate's public key, in the base64 form `pin_sha256` takes.
pub fn spki_pin(cert: &CertificateDer<'_>) -> Option<String> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let digest = sha2::Sha256::digest(parsed.subject_public_key_info().as_ref());
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Client-side TLS settings for `rtmps://` upstreams.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl TlsClient {
    /// Trusts `ca_file` alone when given, else the system's root certificates.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, RtmpError> {
        TlsClient::with_trust(&UpstreamTrust {
            ca_file: ca_file.map(Path::to_path_buf),
            pin_sha256: Vec::new(),
        })
    }

    /// Trusts what `trust` says.
    pub fn with_trust(trust: &UpstreamTrust) -> Result<TlsClient, RtmpError> {
        let provider = provider();
        let pins = trust
            .pin_sha256
            .iter()
            .map(|p| parse_pin(p).map_err(|e| RtmpError::Tls(format!("pin_sha256: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut exact = Vec::new();
        let mut roots = rustls::RootCertStore::empty();
        match &trust.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    // A certificate webpki cannot take as an anchor may still be pinned as is.
                    if let Err(e) = roots.add(cert.clone()) {
                        tracing::debug!(
                            "{}: not a trust anchor ({e}); pinned as is",
                            path.display()
                        );
                    }
                    exact.push(cert);
                }
            }
            None if !pins.is_empty() => {}
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(RtmpError::Tls(
                        "no system root certificates found (install ca-certificates, or set \
                         [upstream] ca_file or pin_sha256)"
                            .into(),
                    ));
                }
            }
        }
        let chain = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| RtmpError::Tls(e.to_string()))?,
            )
        };
        let verifier = PlatformVerifier {
            chain,
            exact,
            pins,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RtmpError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Decides whether an upstream's certificate is the platform's; see the module documentation.
#[derive(Debug)]
struct PlatformVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = spki_pin(end_entity);
        let key = pin.as_deref().unwrap_or("(unparsable certificate)");
        if !self.pins.is_empty() {
            let engine = base64::engine::general_purpose::STANDARD;
            return match &pin {
                Some(p) if self.pins.iter().any(|want| engine.encode(want) == *p) => {
                    Ok(ServerCertVerified::assertion())
                }
                _ => Err(rustls::Error::General(format!(
                    "the platform's key (pin sha256//{key}) is not one of [upstream] pin_sha256"
                ))),
            };
        }
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(chain) = &self.chain else {
            return Err(rustls::Error::General("no certificate is trusted".into()));
        };
        chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| rustls::Error::General(explain(&e, key)))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a certificate refusal means for the operator, and what to configure.
fn explain(error: &rustls::Error, key: &str) -> String {
    use rustls::CertificateError as C;
    let pin = format!("pin its key with [upstream] pin_sha256 = [\"{key}\"]");
    let text = error.to_string();
    match error {
        // BadSignature: an issuer of a trusted CA's name, but not its key, signed it.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
            "the platform's certificate is not signed by a trusted CA: set [upstream] ca_file to \
             its CA (or to the certificate itself, which pins it), or {pin}"
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => format!(
            "the platform's certificate is not issued for the URL's host ({text}): use the name \
             it was issued for in the URL, or {pin}"
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the platform's certificate has expired ({text})")
        }
        _ if text.contains("CaUsedAsEndEntity") => format!(
            "the platform presents a CA certificate as its own (as `openssl req -x509` makes \
             by default): put that exact certificate in [upstream] ca_file, or {pin}"
        ),
        _ => format!("the platform's certificate is refused ({text}); to trust it anyway, {pin}"),
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

impl TlsClient {
    /// TLS over `tcp` to `host` (SNI and certificate name), with this client's trust.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, RtmpError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| RtmpError::Tls(format!("{host:?} is not a valid server name")))?;
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| RtmpError::Tls(format!("handshake with {host}: {e}")))
    }
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

#[cfg(test)]
mod pin_tests {
    #[test]
    fn pins_are_read_in_base64_curl_and_hex_forms() {
        let b64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let want = super::parse_pin(b64).expect("base64");
        assert_eq!(super::parse_pin(&format!("sha256//{b64}")), Ok(want));
        let hex: String = want.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(super::parse_pin(&hex), Ok(want));
        assert!(super::parse_pin("c2hvcnQ=").is_err_and(|e| e.contains("32")));
        assert!(super::parse_pin("not a pin!").is_err());
    }
}
