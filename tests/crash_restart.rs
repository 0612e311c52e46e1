//! Crash safety: a child process publishes persistent messages with confirms and acks some,
//! is killed with SIGKILL at a random moment, and the database is reopened. Every message
//! that was confirmed and not acked must be there exactly once; nothing appears twice.
//!
//! The child is this test binary itself, re-run with `WARREN_CRASH_CHILD` set to the
//! database path; it reports on stdout `C <id>` once a message is confirmed and `A <id>`
//! just before it acks one.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warrenmq::{Broker, FieldTable, GetOptions, Message, QueueDeclareOptions};

const CHILD_ENV: &str = "WARREN_CRASH_CHILD";
const ROUNDS: usize = if cfg!(debug_assertions) { 4 } else { 10 };

#[test]
fn smoke() {
    assert!(std::env::var_os(CHILD_ENV).is_none() || cfg!(unix));
}

/// The child's work: runs only when this binary is started as the crash child.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let broker = open(std::path::Path::new(&path));
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("crash", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    ch.confirm_select().unwrap();
    let out = std::io::stdout();
    let start: u64 = std::env::var("WARREN_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut next = start;
    loop {
        let batch: Vec<u64> = (next..next + 50).collect();
        next += 50;
        for id in &batch {
            ch.basic_publish(
                "",
                "crash",
                Message::new(id.to_le_bytes().to_vec()).persistent(),
            )
            .unwrap();
        }
        assert!(ch.wait_for_confirms().unwrap());
        let mut lock = out.lock();
        for id in &batch {
            writeln!(lock, "C {id}").unwrap();
        }
        lock.flush().unwrap();
        drop(lock);
        // Ack a third of what is there, from the head.
        for _ in 0..17 {
            let Some(d) = ch.basic_get("crash", GetOptions::default()).unwrap() else {
                break;
            };
            let id = u64::from_le_bytes(d.body()[..8].try_into().unwrap());
            let mut lock = out.lock();
            writeln!(lock, "A {id}").unwrap();
            lock.flush().unwrap();
            drop(lock);
            d.ack().unwrap();
        }
    }
}

/// The memory budget of the child and of the checks (`WARREN_CRASH_BUDGET`), if any.
const BUDGET_ENV: &str = "WARREN_CRASH_BUDGET";

/// Opens the database, with the memory budget of [`BUDGET_ENV`] if set.
fn open(path: &std::path::Path) -> Broker {
    let mut builder = Broker::builder();
    builder.data_path(path);
    if let Some(budget) = std::env::var(BUDGET_ENV).ok().and_then(|b| b.parse().ok()) {
        builder.memory_budget(budget);
    }
    builder.build().unwrap()
}

#[cfg(unix)]
#[test]
fn confirmed_unacked_messages_survive_sigkill_exactly_once() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    sigkill_rounds(None);
}

/// The same with a memory budget of 256 bytes: after 32 messages of 8 bytes every
/// persistent message is kept on disk only, read back by `basic_get`, and recovered on disk
/// beyond the first page.
#[cfg(unix)]
#[test]
fn confirmed_unacked_messages_survive_sigkill_exactly_once_when_paged() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    sigkill_rounds(Some("256"));
}

/// Runs the crash rounds, with the child and the checks under `budget`.
#[cfg(unix)]
fn sigkill_rounds(budget: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut confirmed = HashSet::new();
    let mut maybe_acked = HashSet::new();
    let mut start = 0u64;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .env(BUDGET_ENV, budget.unwrap_or(""))
            .env("WARREN_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let the child make progress, then kill it at a varying moment.
        let kill_after = Duration::from_millis(150 + (round as u64 * 97) % 400);
        let began = Instant::now();
        let mut lines = Vec::new();
        while began.elapsed() < kill_after {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(10)) {
                lines.push(line);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in &lines {
            let (kind, id) = line.split_once(' ').unwrap_or(("", ""));
            let Ok(id) = id.parse::<u64>() else { continue };
            match kind {
                "C" => {
                    confirmed.insert(id);
                }
                "A" => {
                    maybe_acked.insert(id);
                }
                _ => {}
            }
        }
        start += 1_000_000;

        // Reopen after the crash and check, then put everything back for the next round.
        let broker = {
            let mut builder = Broker::builder();
            builder.data_path(&path);
            if let Some(budget) = budget {
                builder.memory_budget(budget.parse().unwrap());
            }
            builder.build().unwrap()
        };
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        ch.queue_declare("crash", QueueDeclareOptions::durable(), FieldTable::new())
            .unwrap();
        let mut present = HashSet::new();
        let mut held = Vec::new();
        while let Some(d) = ch.basic_get("crash", GetOptions::default()).unwrap() {
            let id = u64::from_le_bytes(d.body()[..8].try_into().unwrap());
            assert!(
                present.insert(id),
                "round {round}: message {id} recovered twice"
            );
            held.push(d);
        }
        for id in confirmed.difference(&maybe_acked) {
            assert!(
                present.contains(id),
                "round {round}: confirmed message {id} was lost"
            );
        }
        // Hand them back unacked, so the next round starts from the same state.
        drop(held);
        ch.close();
        drop(ch);
        drop(broker);
        assert!(
            !lines.is_empty(),
            "round {round}: the child reported nothing"
        );
    }
    assert!(
        confirmed.len() > 100,
        "too few messages confirmed: {}",
        confirmed.len()
    );
}
