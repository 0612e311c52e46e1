//! Runs `examples/async_service.rs` as a program: once until it has handled a fixed number
//! of orders, once stopped by SIGINT (Ctrl-C) mid-stream; then opens its data directory
//! again and checks that every published order was either acked or is still there.
//!
//! The example binary that `cargo test` builds beside the tests is used when it is newer
//! than every source file; otherwise (a run of this test alone after a change) it is built
//! first, with this test's profile and features.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use warrenmq::Broker;

/// How long the example may take to stop once it should (generous for a loaded machine).
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// The newest modification time of the files the example is built from.
fn newest_source(root: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    let mut pending = vec![root.join("src"), root.join("examples/async_service.rs")];
    pending.push(root.join("Cargo.toml"));
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}

/// Returns the path of the example binary, built first if it is missing or older than its
/// sources (once per test run).
fn example() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // target/<profile>/deps/<this test> → target/<profile>/examples/async_service
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let binary = profile_dir.join("examples").join("async_service");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let fresh = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .is_ok_and(|built| built >= newest_source(root));
        if fresh {
            return binary;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let features: Vec<&str> = [
            ("default", cfg!(feature = "default")),
            ("persistence", cfg!(feature = "persistence")),
            ("wire", cfg!(feature = "wire")),
            ("remote", cfg!(feature = "remote")),
            ("cli", cfg!(feature = "cli")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let mut build = Command::new(cargo);
        build
            .current_dir(root)
            .args([
                "build",
                "--example",
                "async_service",
                "--no-default-features",
            ])
            .args(["--features", &features.join(",")]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the example failed");
        binary
    })
}

/// The example running on `dir`, its stdout read line by line.
struct Service {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Service {
    fn start(dir: &Path, messages: u64) -> Service {
        let mut child = Command::new(example())
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(["--messages", &messages.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Service {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `text`; returns it.
    fn line_with(&mut self, text: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
        panic!(
            "the example ended without printing {text:?}: {:?}",
            self.seen
        );
    }

    /// Waits for the process to exit and checks it exited with status 0; returns what it
    /// printed.
    fn finish(mut self) -> Vec<String> {
        for line in self.lines.by_ref() {
            self.seen.push(line.unwrap());
        }
        let began = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(began.elapsed() < STOP_LIMIT, "the example does not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}: {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `word` in the last line that has it.
fn number_after(lines: &[String], word: &str) -> u64 {
    lines
        .iter()
        .rev()
        .find_map(|l| {
            let rest = &l[l.find(word)? + word.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {word:?} in {lines:?}"))
}

/// What the queues of the example's database hold: (billing, shipping) ready messages.
fn left_in_queues(dir: &Path) -> (u64, u64) {
    let broker = Broker::open(dir.join("orders.redb")).unwrap();
    let ready = |q: &str| broker.queue_stats("/", q).unwrap().messages_ready as u64;
    let left = (ready("billing"), ready("shipping"));
    broker.close().unwrap();
    left
}

#[test]
fn handles_a_fixed_number_of_orders_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), 3_000);
    service.line_with("serving");
    let lines = service.finish();
    assert_eq!(number_after(&lines, "published "), 3_000, "{lines:?}");
    assert_eq!(number_after(&lines, "billing acked "), 3_000);
    assert_eq!(number_after(&lines, "shipping acked "), 1_500);
    assert_eq!(left_in_queues(dir.path()), (0, 0));
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_it_gracefully_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // 0: publish until Ctrl-C.
    let mut service = Service::start(dir.path(), 0);
    service.line_with("serving");
    // Let it publish and consume for a while (the amount does not matter).
    std::thread::sleep(Duration::from_millis(500));
    let pid = service.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let lines = service.finish();
    assert!(lines.iter().any(|l| l.contains("Ctrl-C")), "{lines:?}");
    let published = number_after(&lines, "published ");
    let billed = number_after(&lines, "billing acked ");
    let shipped = number_after(&lines, "shipping acked ");
    assert!(published > 0, "{lines:?}");
    // Every confirmed order is either acked or still in its queue, once: the stop lost
    // nothing and acked nothing twice.
    assert_eq!(
        left_in_queues(dir.path()),
        (published - billed, published / 2 - shipped),
        "{lines:?}"
    );
}
