//! A `warren-server` child process on a free loopback port, for tests of the binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `warren-server` process serving on a free loopback port; killed (SIGKILL) on drop.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `warren-server --listen 127.0.0.1:0` with extra arguments and reads the
    /// address it bound from its first line.
    pub fn start(extra: &[&str]) -> ServerProcess {
        ServerProcess::start_under(&[], extra)
    }

    /// Like [`start`](Self::start), run under a wrapper command such as
    /// `prlimit --as=4294967296` (empty: none).
    pub fn start_under(wrapper: &[&str], extra: &[&str]) -> ServerProcess {
        ServerProcess::spawn(wrapper, &[], extra)
    }

    /// Like [`start`](Self::start), with extra environment variables.
    #[allow(dead_code, reason = "only the binary's own tests set its environment")]
    pub fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> ServerProcess {
        ServerProcess::spawn(&[], env, extra)
    }

    fn spawn(wrapper: &[&str], env: &[(&str, &str)], extra: &[&str]) -> ServerProcess {
        let server = env!("CARGO_BIN_EXE_warren-server");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(server);
                command
            }
            None => Command::new(server),
        };
        let mut child = command
            .envs(env.iter().copied())
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

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (30 s at most) for the process to exit; returns its exit
    /// code (`None` if a signal ended it).
    #[cfg(unix)]
    pub fn terminate(&mut self) -> Option<i32> {
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
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
