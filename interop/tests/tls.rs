//! AMQP over TLS (`amqps`, `WireServer::listen_tls`) with certificates the test makes with
//! rcgen (a CA, a server certificate for 127.0.0.1 and localhost, a client certificate):
//! lapin, pika and py-amqp publish with confirms and consume over it; a client without a
//! certificate is refused when peer verification is on and served when certificates are
//! optional; plain AMQP on the TLS port, and a client that never starts the TLS handshake,
//! are disconnected without harm to the listener.
//!
//! The Python clients' tests are reported as ignored when pika or py-amqp is missing (and
//! fail under `CI=true`; see `warren_interop::trial`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use warren_interop::{trial, Need};
use warrenmq::{Broker, TlsOptions, WireOptions, WireServer};

fn main() -> ExitCode {
    warren_interop::run(vec![
        trial(
            "lapin_publishes_confirms_and_consumes_over_tls",
            &[],
            lapin_publishes_confirms_and_consumes_over_tls,
        ),
        trial(
            "a_client_without_a_certificate_is_refused_when_peers_are_verified",
            &[],
            a_client_without_a_certificate_is_refused_when_peers_are_verified,
        ),
        trial(
            "a_client_without_a_certificate_is_served_when_certificates_are_optional",
            &[],
            a_client_without_a_certificate_is_served_when_certificates_are_optional,
        ),
        trial(
            "plain_amqp_on_the_tls_port_is_refused_cleanly",
            &[],
            plain_amqp_on_the_tls_port_is_refused_cleanly,
        ),
        trial(
            "a_stalled_tls_handshake_is_dropped_at_the_handshake_deadline",
            &[],
            a_stalled_tls_handshake_is_dropped_at_the_handshake_deadline,
        ),
        trial(
            "unusable_certificates_are_refused_with_a_clear_error",
            &[],
            unusable_certificates_are_refused_with_a_clear_error,
        ),
        trial(
            "warren_server_serves_amqps_from_its_tls_flags",
            &[Need::WarrenServer],
            warren_server_serves_amqps_from_its_tls_flags,
        ),
        trial(
            "warren_server_refuses_unusable_tls_files",
            &[Need::WarrenServer],
            warren_server_refuses_unusable_tls_files,
        ),
        trial(
            "pika_and_py_amqp_publish_confirm_and_consume_over_tls",
            &[Need::Python("pika"), Need::Python("amqp")],
            pika_and_py_amqp_publish_confirm_and_consume_over_tls,
        ),
        trial(
            "pika_and_py_amqp_without_a_certificate_are_refused",
            &[Need::Python("pika"), Need::Python("amqp")],
            pika_and_py_amqp_without_a_certificate_are_refused,
        ),
    ])
}

/// A CA, a server certificate signed by it (for 127.0.0.1 and localhost) and a client
/// certificate signed by it, all PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Warren test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &ca, &ca_key).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            vec!["warren-test-client".into()],
            "warren-test-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// The server's options: its certificate, and the CA to verify clients against.
    fn options(&self, fail_if_no_peer_cert: bool) -> TlsOptions {
        TlsOptions::new(self.server_cert.clone(), self.server_key.clone())
            .verify_peer(self.ca.clone(), fail_if_no_peer_cert)
    }

    /// lapin's TLS settings: trust the CA, present the client certificate if `identity`.
    fn lapin(&self, identity: bool) -> OwnedTLSConfig {
        OwnedTLSConfig {
            identity: identity.then(|| OwnedIdentity::PKCS8 {
                pem: self.client_cert.clone().into_bytes(),
                key: self.client_key.clone().into_bytes(),
            }),
            cert_chain: Some(self.ca.clone()),
        }
    }

    /// Writes the server's certificate and key for `warren-server --tls-cert / --tls-key`;
    /// returns (cert, key).
    fn write_server(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("PEM written");
            path
        };
        (
            write("server.pem", &self.server_cert),
            write("server.key", &self.server_key),
        )
    }

    /// Writes the PEM files the Python clients read; returns (ca, client cert, client key).
    fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("PEM written");
            path
        };
        (
            write("ca.pem", &self.ca),
            write("client.pem", &self.client_cert),
            write("client.key", &self.client_key),
        )
    }
}

/// A broker with a plain listener and an `amqps` one; returns the TLS address.
fn serve_tls(tls: &TlsOptions, options: WireOptions) -> (Broker, WireServer, SocketAddr) {
    let broker = Broker::in_memory();
    let server = broker
        .serve_with("127.0.0.1:0", options)
        .expect("plain listener");
    let addr = server
        .listen_tls("127.0.0.1:0", tls)
        .expect("amqps listener");
    (broker, server, addr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(addr: SocketAddr, tls: OwnedTLSConfig) -> lapin::Result<Connection> {
    let uri = format!("amqps://guest:guest@{addr}/%2f");
    let runtime = lapin::runtime::default_runtime().expect("lapin runtime");
    tokio::time::timeout(
        Duration::from_secs(20),
        Connection::connect_with_config(&uri, ConnectionProperties::default(), tls, runtime),
    )
    .await
    .expect("lapin connects or fails within 20 s")
}

/// Waits until `condition` holds; fails after 10 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lapin_publishes_confirms_and_consumes_over_tls() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(true), WireOptions::default());
    runtime().block_on(async {
        let conn = connect(addr, pki.lapin(true))
            .await
            .expect("TLS connection");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        ch.queue_declare(
            "tls-q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue");
        // Bodies beyond one TLS record (16 KiB) and one frame (128 KiB) as well.
        let sizes = [0, 10, 20_000, 300_000];
        for (i, size) in sizes.iter().enumerate() {
            let body = vec![i as u8; *size];
            let confirm = ch
                .basic_publish(
                    "".into(),
                    "tls-q".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            assert!(matches!(confirm, Confirmation::Ack(_)), "{confirm:?}");
        }
        let mut consumer = ch
            .basic_consume(
                "tls-q".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        for (i, size) in sizes.iter().enumerate() {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery within 10 s")
                .expect("a delivery")
                .expect("not an error");
            assert_eq!(delivery.data, vec![i as u8; *size]);
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        assert_eq!(server.connection_count(), 1);
        // The management API shows the listener and the connection's TLS session.
        let management = server.serve_management("127.0.0.1:0").expect("management");
        let http = management.local_addr();
        let overview = api_get(http, "/api/overview");
        let listeners = overview["listeners"].as_array().expect("listeners");
        assert!(
            listeners.iter().any(|l| l["protocol"] == "amqp/ssl"
                && l["port"] == serde_json::json!(addr.port())),
            "{overview}"
        );
        let connections = api_get(http, "/api/connections");
        let c = &connections[0];
        assert_eq!(c["ssl"], serde_json::json!(true), "{c}");
        assert!(
            c["ssl_protocol"] == "tlsv1.3" || c["ssl_protocol"] == "tlsv1.2",
            "{c}"
        );
        assert!(
            c["ssl_cipher"].as_str().is_some_and(|s| !s.is_empty()),
            "{c}"
        );
        assert_eq!(c["port"], serde_json::json!(addr.port()), "{c}");
        conn.close(200, "bye".into()).await.expect("closes");
    });
    eventually("the connection is gone", || server.connection_count() == 0);
}

/// GETs a management API path as guest; the answer must be 200 with JSON.
fn api_get(http: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = warren_interop::http_get(http, path).expect("the API answers");
    assert!(status.contains(" 200"), "GET {path}: {status} {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// A client trusting the server (`pki`'s CA) with a certificate of another CA is refused.
async fn untrusted_certificate_is_refused(pki: &Pki, addr: SocketAddr) {
    let other = Pki::new();
    let tls = OwnedTLSConfig {
        cert_chain: Some(pki.ca.clone()),
        ..other.lapin(true)
    };
    let refused = connect(addr, tls).await;
    assert!(
        refused.is_err(),
        "served with an untrusted client certificate"
    );
}

fn a_client_without_a_certificate_is_refused_when_peers_are_verified() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(true), WireOptions::default());
    runtime().block_on(async {
        let refused = connect(addr, pki.lapin(false)).await;
        assert!(refused.is_err(), "served without a client certificate");
        // A certificate from another CA is refused too.
        untrusted_certificate_is_refused(&pki, addr).await;
        // The listener goes on serving clients that present one.
        let conn = connect(addr, pki.lapin(true)).await.expect("served");
        conn.close(200, "bye".into()).await.expect("closes");
    });
    eventually("the connections are gone", || {
        server.connection_count() == 0
    });
}

fn a_client_without_a_certificate_is_served_when_certificates_are_optional() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(false), WireOptions::default());
    runtime().block_on(async {
        let conn = connect(addr, pki.lapin(false))
            .await
            .expect("served without a certificate");
        let ch = conn.create_channel().await.expect("channel");
        ch.close(200, "bye".into()).await.expect("closes");
        conn.close(200, "bye".into()).await.expect("closes");
        // A presented certificate must still verify.
        untrusted_certificate_is_refused(&pki, addr).await;
    });
    eventually("the connections are gone", || {
        server.connection_count() == 0
    });
}

/// Reads until the server closes the connection; fails if it has not within 10 s.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    let mut reply = Vec::new();
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return reply,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return reply,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

fn plain_amqp_on_the_tls_port_is_refused_cleanly() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(true), WireOptions::default());
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .expect("header sent");
    let reply = read_to_close(&mut stream);
    // At most a TLS alert record (content type 21); never an AMQP reply.
    assert!(
        reply.is_empty() || reply[0] == 21,
        "unexpected reply {reply:?}"
    );
    eventually("the connection is gone", || server.connection_count() == 0);
    // Both listeners still serve.
    let plain = TcpStream::connect(server.local_addr()).expect("plain listener serves");
    drop(plain);
    runtime().block_on(async {
        let conn = connect(addr, pki.lapin(true)).await.expect("served");
        conn.close(200, "bye".into()).await.expect("closes");
    });
}

fn a_stalled_tls_handshake_is_dropped_at_the_handshake_deadline() {
    let pki = Pki::new();
    let options = WireOptions {
        handshake_timeout: Duration::from_millis(300),
        ..WireOptions::default()
    };
    let (_broker, server, addr) = serve_tls(&pki.options(true), options);
    // Connects and never starts the TLS handshake: dropped at the deadline.
    let mut silent = TcpStream::connect(addr).expect("connects");
    assert!(read_to_close(&mut silent).is_empty());
    // Starts it and stalls halfway (a ClientHello record header with no body).
    let mut halfway = TcpStream::connect(addr).expect("connects");
    halfway
        .write_all(&[22, 3, 1, 0, 200, 1])
        .expect("partial hello");
    read_to_close(&mut halfway);
    eventually("the connections are gone", || {
        server.connection_count() == 0
    });
}

fn unusable_certificates_are_refused_with_a_clear_error() {
    let pki = Pki::new();
    let (_broker, server) = warren_interop::serve();
    let cases = [
        (
            TlsOptions::new("", pki.server_key.clone()),
            "no PEM certificate",
        ),
        (TlsOptions::new(pki.server_cert.clone(), ""), "private key"),
        (
            TlsOptions::new(pki.server_cert.clone(), pki.client_key.clone()),
            "certificate and key",
        ),
        (
            TlsOptions::new(pki.server_cert.clone(), pki.server_key.clone())
                .verify_peer("not PEM", true),
            "client CA bundle",
        ),
    ];
    for (options, expected) in cases {
        let error = server
            .listen_tls("127.0.0.1:0", &options)
            .expect_err("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains(expected),
            "{error} should mention {expected}"
        );
    }
    let missing = TlsOptions::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
        .expect_err("no such file");
    assert!(
        missing.to_string().contains("/nonexistent/cert.pem"),
        "{missing}"
    );
}

/// Runs tls_clients.py against an `amqps` listener; returns its output lines.
fn run_python_clients(pki: &Pki, addr: SocketAddr, mode: &str) -> (bool, Vec<String>) {
    let dir = tempfile_dir();
    let (ca, cert, key) = pki.write(&dir);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/tls_clients.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(script)
        .arg(addr.port().to_string())
        .args([&ca, &cert, &key])
        .arg(mode)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), lines)
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warren-tls-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

fn pika_and_py_amqp_publish_confirm_and_consume_over_tls() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(true), WireOptions::default());
    let (ok, lines) = run_python_clients(&pki, addr, "serve");
    assert!(ok, "{lines:?}");
    assert_eq!(lines, ["ok pika", "ok py-amqp"]);
    eventually("the connections are gone", || {
        server.connection_count() == 0
    });
}

fn pika_and_py_amqp_without_a_certificate_are_refused() {
    let pki = Pki::new();
    let (_broker, server, addr) = serve_tls(&pki.options(true), WireOptions::default());
    let (_, lines) = run_python_clients(&pki, addr, "no-cert");
    assert_eq!(lines, ["refused pika", "refused py-amqp"]);
    // The same clients are served once certificates are optional.
    let (_broker, _server, optional) = serve_tls(&pki.options(false), WireOptions::default());
    let (_, lines) = run_python_clients(&pki, optional, "no-cert");
    assert_eq!(lines, ["connected pika", "connected py-amqp"]);
    eventually("the connections are gone", || {
        server.connection_count() == 0
    });
}

/// A `warren-server` process (the binary built from this workspace) on free loopback
/// ports; killed on drop.
struct ServerProcess {
    child: std::process::Child,
    /// Where it serves `amqps`.
    amqps: SocketAddr,
}

impl ServerProcess {
    /// Starts `warren-server --listen 127.0.0.1:0` with `args` and reads the `amqps`
    /// address from its `warren-server amqps on ADDR` line.
    fn start(args: &[&std::ffi::OsStr]) -> ServerProcess {
        use std::io::BufRead as _;
        let binary = warren_interop::warren_server().expect("warren-server is built");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warren-server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let amqps = loop {
            let line = lines
                .next()
                .expect("warren-server prints its listeners")
                .expect("a line");
            if let Some(addr) = line.strip_prefix("warren-server amqps on ") {
                break addr.trim().parse().expect("an address");
            }
        };
        ServerProcess { child, amqps }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `warren-server` with `args`, which must make it stop at start; returns its exit
/// status and standard error. Fails if it is still running after 30 s.
fn run_to_exit(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String) {
    let binary = warren_interop::warren_server().expect("warren-server is built");
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warren-server starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warren-server {args:?} is still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    (status, stderr)
}

/// The binary's `--tls-*` flags, end to end: `warren-server` started with a certificate, a
/// key, a CA and `--tls-verify-peer` serves lapin with a client certificate (publish with
/// confirms, consume) and refuses one without.
fn warren_server_serves_amqps_from_its_tls_flags() {
    let pki = Pki::new();
    let dir = tempfile_dir();
    let (ca, _, _) = pki.write(&dir);
    let (cert, key) = pki.write_server(&dir);
    let server = ServerProcess::start(&[
        "--tls-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--tls-ca".as_ref(),
        ca.as_os_str(),
        "--tls-verify-peer".as_ref(),
    ]);
    let addr = server.amqps;
    runtime().block_on(async {
        let conn = connect(addr, pki.lapin(true))
            .await
            .expect("TLS connection with a client certificate");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        ch.queue_declare(
            "bin-q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue");
        let confirm = ch
            .basic_publish(
                "".into(),
                "bin-q".into(),
                BasicPublishOptions::default(),
                b"over amqps",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(matches!(confirm, Confirmation::Ack(_)), "{confirm:?}");
        let mut consumer = ch
            .basic_consume(
                "bin-q".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .expect("a delivery")
            .expect("not an error");
        assert_eq!(delivery.data, b"over amqps");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        conn.close(200, "bye".into()).await.expect("closes");
        // --tls-verify-peer: a client without a certificate is refused.
        let refused = connect(addr, pki.lapin(false)).await;
        assert!(refused.is_err(), "served without a client certificate");
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Certificate and key files the binary cannot use stop it at start with exit status 1 or
/// 2 and the reason on standard error, never a panic: a missing file, a file without a PEM
/// certificate, a key that is not the certificate's, a CA bundle without a certificate.
fn warren_server_refuses_unusable_tls_files() {
    let pki = Pki::new();
    let dir = tempfile_dir();
    let (_, _, client_key) = pki.write(&dir);
    let (cert, key) = pki.write_server(&dir);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not PEM").expect("written");
    let missing = dir.join("missing.pem");
    let cases: [(&Path, &Path, Option<&Path>, &str); 4] = [
        (&missing, &key, None, "missing.pem"),
        (&garbage, &key, None, "no PEM certificate"),
        (&cert, &client_key, None, "certificate and key"),
        (&cert, &key, Some(&garbage), "client CA bundle"),
    ];
    for (cert, key, ca, expected) in cases {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--tls-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ];
        if let Some(ca) = ca {
            args.extend([
                "--tls-ca".as_ref(),
                ca.as_os_str(),
                "--tls-verify-peer".as_ref(),
            ]);
        }
        let (status, stderr) = run_to_exit(&args);
        assert!(
            matches!(status.code(), Some(1 | 2)),
            "{expected}: {status}\n{stderr}"
        );
        assert!(
            stderr.contains("error:") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
