//! A persistent broker on a small tmpfs that fills up (issue 10): publishers of persistent
//! messages are held back by the disk alarm or refused, never falsely confirmed; once space
//! is freed, publishing resumes in the same process; after a restart every confirmed
//! message is there.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere each test prints why it is
//! skipped and passes.
#![cfg(all(feature = "persistence", target_os = "linux"))]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use warrenmq::{
    Broker, Channel, Connection, Error, FieldTable, GetOptions, Message, PublishOptions,
    QueueDeclareOptions, Resource,
};

const BODY: usize = 128 * 1024;

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot.
    fn mount(mib: u32) -> Result<Tmpfs, String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
            });
        if uid.as_deref() != Some("0") {
            return Err("mounting a tmpfs needs root".to_owned());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            return Err(format!("mount -t tmpfs failed: {status}"));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Mounts a tmpfs or prints why the test is skipped.
fn tmpfs_or_skip(test: &str, mib: u32) -> Option<Tmpfs> {
    match Tmpfs::mount(mib) {
        Ok(fs) => Some(fs),
        Err(reason) => {
            println!("{test}: skipped: {reason}");
            None
        }
    }
}

/// Writes a file of `mib` MiB that takes room until it is removed.
fn filler(dir: &Path, mib: usize) -> PathBuf {
    let path = dir.join("filler");
    std::fs::write(&path, vec![0xF0; mib << 20]).expect("the filler fits");
    path
}

fn open(path: &Path, disk_free_limit: u64) -> Broker {
    Broker::builder()
        .data_path(path)
        .disk_free_limit(disk_free_limit)
        .build()
        .expect("opens")
}

/// A confirming channel on a fresh connection, with the durable queue `jobs`.
fn channel(broker: &Broker) -> (Connection, Channel) {
    let conn = broker.connect("/").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    ch.confirm_select().unwrap();
    (conn, ch)
}

fn message(i: u32) -> Message {
    let mut body = vec![0u8; BODY];
    body[..4].copy_from_slice(&i.to_be_bytes());
    Message::new(body).persistent()
}

/// What publishing one message with a confirm came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Confirmed,
    /// Nacked (a failed write is a nack: the channel goes on), or refused with an error.
    Refused,
    /// Held back by the disk alarm before it was published.
    Held,
}

fn publish(ch: &Channel, i: u32) -> Outcome {
    match ch.try_basic_publish("", "jobs", PublishOptions::default(), message(i)) {
        Err(Error::ResourceAlarm {
            resource: Resource::Disk,
        }) => Outcome::Held,
        Err(_) => Outcome::Refused,
        Ok(()) => match ch.wait_for_confirms() {
            Ok(true) => Outcome::Confirmed,
            Ok(false) | Err(_) => Outcome::Refused,
        },
    }
}

/// Every message number in `jobs` after a restart.
fn stored(path: &Path) -> BTreeSet<u32> {
    let broker = open(path, 0);
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let mut seen = BTreeSet::new();
    while let Some(d) = ch.basic_get("jobs", GetOptions::no_ack()).unwrap() {
        seen.insert(u32::from_be_bytes(d.body()[..4].try_into().unwrap()));
    }
    seen
}

#[test]
fn the_disk_alarm_holds_persistent_publishers_back_until_space_returns() {
    let Some(fs) = tmpfs_or_skip("disk alarm", 32) else {
        return;
    };
    let filler = filler(fs.path(), 12);
    let path = fs.path().join("warren.redb");
    let broker = open(&path, 8 << 20);
    let (mut conn, mut ch) = channel(&broker);
    let mut confirmed = BTreeSet::new();
    let mut next = 0;
    let began = Instant::now();
    // Publish, slowly enough for the once-a-second check, until the alarm holds us back.
    loop {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no disk alarm after 60 s: {:?}",
            broker.stats()
        );
        match publish(&ch, next) {
            Outcome::Confirmed => {
                confirmed.insert(next);
            }
            Outcome::Refused => (conn, ch) = channel(&broker),
            Outcome::Held => break,
        }
        next += 1;
        thread::sleep(Duration::from_millis(30));
    }
    let stats = broker.stats();
    assert!(stats.disk_alarm, "{stats:?}");
    assert!(
        stats.disk_free.is_some_and(|free| free < 8 << 20),
        "{stats:?}"
    );
    // Transient messages still go through; a blocking persistent publish waits.
    ch.basic_publish("", "jobs", Message::new("transient"))
        .unwrap();
    let blocked = {
        let (conn, ch) = channel(&broker);
        thread::spawn(move || {
            let result = ch.basic_publish("", "jobs", message(1_000_000));
            let confirmed = ch.wait_for_confirms();
            drop(conn);
            (result, confirmed)
        })
    };
    let waited = Instant::now();
    while broker.stats().blocked_publishers == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the publish was not held"
        );
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(300));
    assert!(!blocked.is_finished(), "held back while the disk is short");
    // Space returns: the alarm clears within a few seconds and publishing resumes.
    std::fs::remove_file(&filler).unwrap();
    let (result, blocked_confirm) = blocked.join().unwrap();
    result.unwrap();
    assert!(
        blocked_confirm.unwrap(),
        "the released publish is confirmed"
    );
    confirmed.insert(1_000_000);
    assert!(!broker.stats().disk_alarm);
    for _ in 0..5 {
        assert_eq!(
            publish(&ch, next),
            Outcome::Confirmed,
            "{:?}",
            broker.stats()
        );
        confirmed.insert(next);
        next += 1;
    }
    drop((ch, conn));
    broker.close().unwrap();
    drop(broker);
    let after = stored(&path);
    let missing: Vec<_> = confirmed.difference(&after).collect();
    assert!(missing.is_empty(), "confirmed and lost: {missing:?}");
}

#[test]
fn a_full_disk_never_confirms_and_the_store_carries_on_once_space_returns() {
    let Some(fs) = tmpfs_or_skip("disk full", 24) else {
        return;
    };
    let filler = filler(fs.path(), 8);
    let path = fs.path().join("warren.redb");
    // No alarm: the writes themselves fail (ENOSPC).
    let broker = open(&path, 0);
    let (conn, ch) = channel(&broker);
    let mut confirmed = BTreeSet::new();
    let mut refused = 0;
    let mut next = 0;
    while refused < 3 {
        assert!(next < 10_000, "the disk never filled");
        match publish(&ch, next) {
            Outcome::Confirmed => {
                confirmed.insert(next);
            }
            Outcome::Refused => {
                refused += 1;
                assert!(
                    !ch.is_closed() && !conn.is_closed(),
                    "a failed write is a nack; the channel goes on"
                );
            }
            Outcome::Held => panic!("no alarm was asked for"),
        }
        next += 1;
    }
    assert!(!confirmed.is_empty());
    std::fs::remove_file(&filler).unwrap();
    // The same process publishes and confirms again.
    let began = Instant::now();
    loop {
        match publish(&ch, next) {
            Outcome::Confirmed => break,
            _ => assert!(!ch.is_closed(), "the channel survives a failed write"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the store still refuses writes 20 s after space returned"
        );
        next += 1;
        thread::sleep(Duration::from_millis(100));
    }
    confirmed.insert(next);
    drop((ch, conn));
    let _ = broker.close();
    drop(broker);
    let after = stored(&path);
    let missing: Vec<_> = confirmed.difference(&after).collect();
    assert!(missing.is_empty(), "confirmed and lost: {missing:?}");
}
