//! TLS for the wire listener (feature `tls`): [`TlsOptions`], RabbitMQ's `ssl_options`
//! (a PEM certificate chain and private key, and optionally a CA bundle that client
//! certificates are verified against), turned into a rustls server configuration (with the
//! `ring` crypto provider), and what a connection records of its TLS session.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::transport::TlsSession;

/// The TLS settings of an `amqps` listener ([`WireServer::listen_tls`](crate::WireServer::listen_tls)),
/// as RabbitMQ's `ssl_options`: `certfile`, `keyfile`, `cacertfile` with
/// `verify = verify_peer`, and `fail_if_no_peer_cert`.
///
/// TLS 1.2 and 1.3 are offered, with rustls's safe defaults for cipher suites.
///
/// # Examples
///
/// ```no_run
/// use warrenmq::{Broker, TlsOptions};
///
/// # fn main() -> std::io::Result<()> {
/// let server = Broker::in_memory().serve("127.0.0.1:5672")?;
/// let tls = TlsOptions::from_pem_files("server.pem", "server.key")?
///     .verify_peer(std::fs::read("ca.pem")?, true);
/// let amqps = server.listen_tls("127.0.0.1:5671", &tls)?;
/// println!("amqps://guest:guest@localhost:{}/", amqps.port());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server's certificate chain in PEM, its own certificate first, then any
    /// intermediates (RabbitMQ's `certfile`).
    pub cert_chain: Vec<u8>,
    /// The server's private key in PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (RabbitMQ's
    /// `keyfile`).
    pub private_key: Vec<u8>,
    /// CA certificates in PEM that client certificates must chain to. `Some` asks each
    /// client for a certificate and refuses one that does not verify (RabbitMQ's
    /// `cacertfile` with `verify = verify_peer`); `None` asks for none (`verify_none`).
    pub client_ca: Option<Vec<u8>>,
    /// With [`client_ca`](Self::client_ca): refuse a client that presents no certificate
    /// at all (RabbitMQ's `fail_if_no_peer_cert`). When `false`, such a client is served,
    /// and one that presents a certificate must still present a valid one.
    pub fail_if_no_peer_cert: bool,
}

impl TlsOptions {
    /// Options with the server's certificate chain and private key (both PEM), asking
    /// clients for no certificate.
    pub fn new(cert_chain: impl Into<Vec<u8>>, private_key: impl Into<Vec<u8>>) -> Self {
        TlsOptions {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_ca: None,
            fail_if_no_peer_cert: false,
        }
    }

    /// Reads the certificate chain and the private key from PEM files.
    ///
    /// # Errors
    ///
    /// The I/O error of reading either file, with its path in the message.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> io::Result<Self> {
        Ok(TlsOptions::new(
            read(cert_chain.as_ref())?,
            read(private_key.as_ref())?,
        ))
    }

    /// Asks clients for a certificate, verified against the CA certificates `client_ca`
    /// (PEM); with `fail_if_no_peer_cert`, a client without one is refused.
    pub fn verify_peer(
        mut self,
        client_ca: impl Into<Vec<u8>>,
        fail_if_no_peer_cert: bool,
    ) -> Self {
        self.client_ca = Some(client_ca.into());
        self.fail_if_no_peer_cert = fail_if_no_peer_cert;
        self
    }

    /// Builds the rustls acceptor.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for PEM that holds no certificate or no key, a key
    /// that does not match the certificate, or a CA bundle without a usable certificate.
    pub(crate) fn acceptor(&self) -> io::Result<TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = certificates(&self.cert_chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(&self.private_key)
            .map_err(|e| invalid(format_args!("TLS private key: no usable PEM key ({e})")))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format_args!("TLS: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca, "client CA bundle")? {
                    roots
                        .add(cert)
                        .map_err(|e| invalid(format_args!("TLS client CA bundle: {e}")))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.fail_if_no_peer_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| invalid(format_args!("TLS client CA bundle: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(format_args!("TLS certificate and key: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl fmt::Debug for TlsOptions {
    /// Leaves the private key out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field(
                "cert_chain",
                &format_args!("{} bytes of PEM", self.cert_chain.len()),
            )
            .field("client_ca", &self.client_ca.as_ref().map(Vec::len))
            .field("fail_if_no_peer_cert", &self.fail_if_no_peer_cert)
            .finish_non_exhaustive()
    }
}

/// The parameters of an established TLS session.
pub(crate) fn session(connection: &ServerConnection) -> TlsSession {
    let protocol = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2".to_owned(),
        Some(other) => format!("{other:?}").to_lowercase(),
        None => String::new(),
    };
    let cipher = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    TlsSession {
        protocol,
        cipher,
        peer_cert: connection
            .peer_certificates()
            .is_some_and(|c| !c.is_empty()),
    }
}

/// Reads a PEM file, naming it in the error.
fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The certificates of a PEM bundle; at least one.
fn certificates(pem: &[u8], what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format_args!("TLS {what}: bad PEM ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(format_args!(
            "TLS {what}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

fn invalid(message: fmt::Arguments<'_>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}
