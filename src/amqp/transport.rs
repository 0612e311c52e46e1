//! What a connection runs over: the TCP stream itself (`amqp`) or, with the `tls` feature, a
//! TLS session on it (`amqps`). A listener has one [`Transport`]; each accepted stream is
//! opened with it (the TLS handshake, within the connection's handshake deadline) and the
//! same connection code then serves either as a [`Stream`].

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use super::tls;

/// A byte stream a connection is served over: a TCP stream or a TLS session on one.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How a listener's accepted streams are opened.
#[derive(Clone)]
pub(crate) enum Transport {
    /// AMQP straight over TCP.
    Plain,
    /// AMQP over TLS (`amqps`).
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

/// An opened stream and what is known of its security.
pub(crate) struct Opened {
    /// The stream to serve.
    pub(crate) stream: Box<dyn Stream>,
    /// The TLS session's parameters, on an `amqps` listener.
    pub(crate) tls: Option<TlsSession>,
}

/// What a connection records of its TLS session (shown by the management API).
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) struct TlsSession {
    /// The protocol version, as RabbitMQ writes it: `tlsv1.3`, `tlsv1.2`.
    pub(crate) protocol: String,
    /// The cipher suite, as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub(crate) cipher: String,
    /// The client presented a certificate (which verified).
    pub(crate) peer_cert: bool,
}

impl Transport {
    /// Opens an accepted stream: at once for plain TCP, after the TLS handshake for TLS.
    ///
    /// # Errors
    ///
    /// The TLS handshake's failure (a client that does not speak TLS, an untrusted or
    /// missing client certificate, a closed connection).
    pub(crate) async fn open(&self, stream: TcpStream) -> io::Result<Opened> {
        let _ = stream.set_nodelay(true);
        match self {
            Transport::Plain => Ok(Opened {
                stream: Box::new(stream),
                tls: None,
            }),
            #[cfg(feature = "tls")]
            Transport::Tls(acceptor) => {
                let stream = acceptor.accept(stream).await?;
                let session = tls::session(stream.get_ref().1);
                Ok(Opened {
                    stream: Box::new(stream),
                    tls: Some(session),
                })
            }
        }
    }

    /// The URI scheme clients use for this transport.
    pub(crate) fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "amqp",
            #[cfg(feature = "tls")]
            Transport::Tls(_) => "amqps",
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}
