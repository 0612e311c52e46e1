//! Helpers shared by the wire tests: a `warren-server` child process on a free port, and
//! the rule for tests that need tools outside Cargo (Python clients, a RabbitMQ): skip with
//! a reason, unless `CI=true`, where a missing tool is a failure.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Returns `true` when running in CI, where nothing may be skipped.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips the calling test with `reason`, or fails it under `CI=true`.
#[track_caller]
pub(crate) fn skip(reason: &str) {
    assert!(!in_ci(), "CI=true and this test cannot run: {reason}");
    eprintln!("skipped: {reason}");
}

/// Returns `true` if `python3` can import every module named, else skips (or fails in CI).
#[track_caller]
pub(crate) fn python_with(modules: &[&str]) -> bool {
    let code = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(&format!(
            "python3 with {modules:?} is not available (pip install amqp pika)"
        ));
    }
    ok
}

/// The path of a script in tests/python/.
pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs a Python script to completion with a time limit.
pub(crate) fn run_python(name: &str, args: &[&str]) -> Output {
    let mut child = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(script(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let _ = child.stdin.take();
    child.wait_with_output().expect("python3 runs")
}

/// A `warren-server` process serving on a free loopback port; killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `warren-server --listen 127.0.0.1:0` with extra arguments and reads the
    /// address it bound from its first line.
    pub(crate) fn start(extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warren-server starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("warren-server prints its address");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ServerProcess { child, addr }
    }

    /// Sends SIGTERM and waits (30 s at most) for the process to exit; returns its exit
    /// code (`None` if a signal ended it).
    #[cfg(unix)]
    pub(crate) fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "warren-server did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port`, as py-amqp takes it.
    pub(crate) fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns `true` if something accepts TCP connections on `addr`.
pub(crate) fn listening(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

/// A minimal hand-driven AMQP client for the wire tests: opens a connection (heartbeats
/// off) and reads what the server says.
#[cfg(feature = "wire")]
pub(crate) struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[cfg(feature = "wire")]
impl RawClient {
    /// Connects and sends the whole handshake at once (protocol header, start-ok with
    /// guest/guest, tune-ok without heartbeats, open of vhost `/`), then waits for open-ok.
    pub(crate) fn open(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        std::io::Write::write_all(&mut client.stream, &handshake_bytes()).expect("writes");
        loop {
            match client.method() {
                Some((
                    0,
                    amq_protocol::protocol::AMQPClass::Connection(
                        amq_protocol::protocol::connection::AMQPMethod::OpenOk(_),
                    ),
                )) => return client,
                Some(_) => {}
                None => panic!("the server closed during the handshake"),
            }
        }
    }

    /// Reads the next method frame (skipping others); `None` at the end of the stream.
    pub(crate) fn method(&mut self) -> Option<(u16, amq_protocol::protocol::AMQPClass)> {
        use amq_protocol::frame::{parse_frame, AMQPFrame};
        loop {
            if let Ok((rest, frame)) = parse_frame(self.buf.as_slice()) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                if let AMQPFrame::Method(ch, m) = frame {
                    return Some((ch, m));
                }
                continue;
            }
            let mut chunk = [0; 65536];
            match std::io::Read::read(&mut self.stream, &mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits for `connection.close` and returns its code and text.
    #[track_caller]
    pub(crate) fn connection_close(&mut self) -> (u16, String) {
        use amq_protocol::protocol::{connection, AMQPClass};
        loop {
            match self.method() {
                Some((0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
                    return (c.reply_code, c.reply_text.to_string())
                }
                Some(_) => {}
                None => panic!("the server hung up without connection.close"),
            }
        }
    }
}

/// Encodes one frame.
#[cfg(feature = "wire")]
pub(crate) fn encode_frame(frame: &amq_protocol::frame::AMQPFrame) -> Vec<u8> {
    use amq_protocol::frame::{gen_frame, WriteContext};
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encodes");
    ctx.into_inner().0
}

/// The bytes of a whole client handshake, sent in one go: protocol header, start-ok
/// (PLAIN guest/guest), tune-ok (no heartbeats), open of vhost `/`.
#[cfg(feature = "wire")]
pub(crate) fn handshake_bytes() -> Vec<u8> {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{connection, AMQPClass};
    use amq_protocol::types::{FieldTable, LongString};
    let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
    let methods = [
        connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
        }),
        connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        }),
        connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        }),
    ];
    for m in methods {
        out.extend_from_slice(&encode_frame(&AMQPFrame::Method(
            0,
            AMQPClass::Connection(m),
        )));
    }
    out
}
