//! Postgres over TLS, as libpq's connection URLs ask for it: `sslmode=require` (encrypted, the
//! server's certificate not checked), `verify-ca` (signed by a trusted authority),
//! `verify-full` (and issued for the host connected to); `sslrootcert=<path>` names the PEM
//! file of the authorities to trust (default: the system's). Without `sslmode`, or with
//! `disable`, `allow` or `prefer`, connections are plain, as before. Every connection the
//! binaries open (the pools, migrations, LISTEN) goes through [`connect`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use diesel::ConnectionResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// How a URL asks for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// No TLS (no `sslmode`, or `disable`, `allow`, `prefer`).
    Plain,
    /// `require`: encrypted; the certificate is not checked (libpq's meaning).
    Require,
    /// `verify-ca`: the certificate chains to a trusted authority.
    VerifyCa,
    /// `verify-full`: and it is issued for the host.
    VerifyFull,
}

/// A URL split into what tokio-postgres reads and what this module handles itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL without `sslrootcert`, with `sslmode=require` for any TLS mode.
    pub url: String,
    pub mode: Mode,
    pub root_cert: Option<String>,
}

/// Reads `sslmode` and `sslrootcert` from a connection URL.
pub fn target(url: &str) -> Result<Target, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = Mode::Plain;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" | "allow" | "prefer" => Mode::Plain,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        ))
                    }
                };
                if mode != Mode::Plain {
                    kept.push("sslmode=require".to_owned());
                }
            }
            "sslrootcert" => {
                root_cert = Some(
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            }
            _ => kept.push(pair.to_owned()),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Target {
        url,
        mode,
        root_cert,
    })
}

/// Opens one connection to `url`, over TLS when the URL asks for it.
pub async fn connect(url: &str) -> ConnectionResult<AsyncPgConnection> {
    let bad = |m: String| diesel::ConnectionError::BadConnection(m);
    let target = target(url).map_err(bad)?;
    if target.mode == Mode::Plain {
        return AsyncPgConnection::establish(url).await;
    }
    let config = client_config(&target).map_err(bad)?;
    let (client, connection) = tokio_postgres::connect(&target.url, MakeRustls(Arc::new(config)))
        .await
        .map_err(|e| {
            bad(format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            ))
        })?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(target: &Target) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &target.root_cert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in the file"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

fn client_config(target: &Target) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match target.mode {
        Mode::VerifyFull => builder
            .with_root_certificates(roots(target)?)
            .with_no_client_auth(),
        Mode::VerifyCa | Mode::Require => {
            // verify-ca: the chain must hold, the name need not; require: nothing is checked.
            let chain = match target.mode {
                Mode::VerifyCa => Some(
                    WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots(target)?),
                        provider(),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    chain,
                    algorithms: provider().signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
        Mode::Plain => unreachable!("plain connections take no TLS configuration"),
    };
    Ok(config)
}

/// `require` (no check of the certificate) and `verify-ca` (the chain, not the name); the
/// handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

/// tokio-postgres' TLS hook over tokio-rustls.
#[derive(Clone)]
struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM works without it unless the server insists
    /// (`channel_binding=require` is not supported).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_says_how_to_connect() {
        let t = target("postgres://u:p@db:5432/x").unwrap();
        assert_eq!(
            (t.mode, t.url.as_str()),
            (Mode::Plain, "postgres://u:p@db:5432/x")
        );
        let t = target(
            "postgres://db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(t.mode, Mode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(t.url, "postgres://db/x?sslmode=require&application_name=a");
        assert_eq!(
            target("postgres://db/x?sslmode=require").unwrap().mode,
            Mode::Require
        );
        assert_eq!(
            target("postgres://db/x?sslmode=prefer").unwrap().url,
            "postgres://db/x"
        );
        let err = target("postgres://db/x?sslmode=always").unwrap_err();
        assert!(err.contains("sslmode=always is not one of"), "{err}");
    }
}
