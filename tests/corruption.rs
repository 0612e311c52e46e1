//! Corruption: a damaged database either opens with every confirmed message, intact, or is
//! refused with a clear error; it never opens silently short.
//!
//! Each trial takes a database holding confirmed persistent messages (closed cleanly, or
//! copied while open as a crash leaves it), damages a copy of it, and opens the copy: a 0-byte
//! file, truncations to several sizes, and single-bit flips at seeded random offsets. The
//! witness file beside it is copied undamaged, as a crash or a bad sector leaves it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use warrenmq::{
    Broker, Error, ExchangeDeclareOptions, ExchangeKind, FieldTable, GetOptions, Message,
    QueueDeclareOptions,
};

/// Confirmed messages in each database.
const MESSAGES: usize = 300;
/// Single-bit flips per database image.
const FLIPS: usize = 100;

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::build(dir.path(), false);
    let outcome = image.trial(dir.path(), |_| {});
    assert!(matches!(outcome, Outcome::Complete), "{outcome:?}");
}

/// A database holding [`MESSAGES`] confirmed messages, and its witness.
struct Image {
    /// The database file's bytes.
    db: Vec<u8>,
    /// The witness file's bytes.
    witness: Vec<u8>,
    /// The bodies that were confirmed.
    confirmed: BTreeSet<Vec<u8>>,
}

/// What opening a damaged copy did.
#[derive(Debug)]
enum Outcome {
    /// Opened with every confirmed message, intact.
    Complete,
    /// Refused, with this error.
    Refused(String),
}

fn witness_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".witness");
    PathBuf::from(name)
}

impl Image {
    /// Builds the image in `dir`: closed cleanly, or copied while the broker is open.
    fn build(dir: &Path, crashed: bool) -> Image {
        let path = dir.join(if crashed {
            "crashed.redb"
        } else {
            "clean.redb"
        });
        let broker = Broker::open(&path).unwrap();
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        let durable = ExchangeDeclareOptions::durable();
        ch.exchange_declare(
            "sorting_room",
            ExchangeKind::Direct,
            durable,
            FieldTable::new(),
        )
        .unwrap();
        for q in ["po_box", "archive"] {
            ch.queue_declare(q, QueueDeclareOptions::durable(), FieldTable::new())
                .unwrap();
            ch.queue_bind(q, "sorting_room", "jason", FieldTable::new())
                .unwrap();
        }
        ch.confirm_select().unwrap();
        let mut confirmed = BTreeSet::new();
        for i in 0..MESSAGES {
            let body = format!("message {i}: {}", "x".repeat(i % 200)).into_bytes();
            ch.basic_publish(
                "sorting_room",
                "jason",
                Message::new(body.clone()).persistent(),
            )
            .unwrap();
            confirmed.insert(body);
        }
        assert!(ch.wait_for_confirms().unwrap());
        let (db, witness) = if crashed {
            // The witness first: it is written after each commit, so a crash leaves it at or
            // behind the database.
            let witness = std::fs::read(witness_of(&path)).unwrap();
            (std::fs::read(&path).unwrap(), witness)
        } else {
            drop(ch);
            drop(broker);
            (
                std::fs::read(&path).unwrap(),
                std::fs::read(witness_of(&path)).unwrap(),
            )
        };
        Image {
            db,
            witness,
            confirmed,
        }
    }

    /// Writes a copy damaged by `damage` into `dir` and opens it.
    fn trial(&self, dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> Outcome {
        let path = dir.join("trial.redb");
        let mut bytes = self.db.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(witness_of(&path), &self.witness).unwrap();
        let outcome = match Broker::open(&path) {
            Err(Error::Storage(e)) => Outcome::Refused(e.to_string()),
            Err(other) => panic!("a damaged database must be a storage error, got {other:?}"),
            Ok(broker) => self.check(&broker),
        };
        let _ = std::fs::remove_file(witness_of(&path));
        let _ = std::fs::remove_file(&path);
        outcome
    }

    /// Checks that both queues hold every confirmed message, intact, and nothing else.
    fn check(&self, broker: &Broker) -> Outcome {
        let ch = broker.connect("/").unwrap().open_channel().unwrap();
        for q in ["po_box", "archive"] {
            let mut got = BTreeSet::new();
            loop {
                match ch.basic_get(q, GetOptions::no_ack()) {
                    Ok(Some(d)) => {
                        got.insert(d.body().to_vec());
                    }
                    Ok(None) => break,
                    Err(e) => return Outcome::Refused(format!("reading {q}: {e}")),
                }
            }
            assert!(
                got == self.confirmed,
                "queue {q} opened silently short or altered: {} of {} confirmed messages, {} \
                 unknown",
                got.intersection(&self.confirmed).count(),
                self.confirmed.len(),
                got.difference(&self.confirmed).count()
            );
        }
        Outcome::Complete
    }
}

/// Runs every damage on one image and returns (complete, refused) counts.
fn run_all(crashed: bool, seed: u64) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::build(dir.path(), crashed);
    let len = image.db.len();
    let mut outcomes = Vec::new();
    outcomes.push((
        "0 bytes".to_string(),
        image.trial(dir.path(), |b| b.clear()),
    ));
    for cut in [1, 100, 511, 4096, len / 4, len / 2, len - 4096, len - 1] {
        let outcome = image.trial(dir.path(), |b| b.truncate(cut));
        outcomes.push((format!("truncated to {cut} of {len} bytes"), outcome));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..FLIPS {
        let bit = rng.gen_range(0..len * 8);
        let outcome = image.trial(dir.path(), |b| b[bit / 8] ^= 1 << (bit % 8));
        outcomes.push((format!("bit {bit} flipped"), outcome));
    }
    let mut complete = 0;
    for (what, outcome) in &outcomes {
        match outcome {
            Outcome::Complete => complete += 1,
            Outcome::Refused(e) => {
                assert!(e.len() > 20, "{what}: an unclear error: {e}");
                println!("{what}: refused: {e}");
            }
        }
    }
    // Truncation to zero or below a header is always refused.
    assert!(matches!(outcomes[0].1, Outcome::Refused(_)));
    (complete, outcomes.len() - complete)
}

#[test]
fn a_cleanly_closed_database_is_never_served_short() {
    let (complete, refused) = run_all(false, 0x5eed_0001);
    println!("clean image: {complete} trials complete, {refused} refused");
}

#[test]
fn a_crashed_database_is_never_served_short() {
    let (complete, refused) = run_all(true, 0x5eed_0002);
    println!("crash image: {complete} trials complete, {refused} refused");
}

/// What salvaging a damaged copy did.
#[derive(Debug)]
struct Salvaged {
    /// The report.
    report: warrenmq::SalvageReport,
    /// The bodies each queue of the new database holds, by queue name.
    bodies: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
}

impl Image {
    /// Writes a copy damaged by `damage` into `dir`, salvages it and reads the new database
    /// back through a broker; `None` if salvage refused.
    fn salvage(&self, dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> Option<Salvaged> {
        let path = dir.join("damaged.redb");
        let out = dir.join("salvaged.redb");
        let mut bytes = self.db.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(witness_of(&path), &self.witness).unwrap();
        let report = warrenmq::salvage(&path, &out);
        // The source is never written.
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "salvage wrote to its source"
        );
        let salvaged = report.ok().map(|report| {
            let broker = Broker::open(&out).expect("a salvaged database opens");
            let ch = broker.connect("/").unwrap().open_channel().unwrap();
            let mut bodies = std::collections::BTreeMap::new();
            for q in &report.queues {
                let mut got = Vec::new();
                while let Some(d) = ch.basic_get(&q.name, GetOptions::no_ack()).unwrap() {
                    got.push(d.body().to_vec());
                }
                bodies.insert(q.name.clone(), got);
            }
            Salvaged { report, bodies }
        });
        for p in [witness_of(&out), out, witness_of(&path), path] {
            let _ = std::fs::remove_file(p);
        }
        salvaged
    }
}

impl Salvaged {
    /// Checks that every message the report counts is in the new database, intact and in
    /// publish order, and that the counts add up; returns the messages kept per queue.
    fn check(&self, confirmed: &BTreeSet<Vec<u8>>, what: &str) -> u64 {
        let r = &self.report;
        let mut entries = 0;
        for q in &r.queues {
            let got = &self.bodies[&q.name];
            assert_eq!(
                got.len() as u64,
                q.messages,
                "{what}: queue {} count",
                q.name
            );
            for body in got {
                assert!(
                    confirmed.contains(body),
                    "{what}: an unknown or altered body"
                );
            }
            let order: Vec<usize> = got.iter().map(|b| index_of(b)).collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{what}: order lost");
            entries += q.messages;
        }
        assert_eq!(entries, r.kept.entries, "{what}: entries kept");
        assert!(r.kept.messages <= MESSAGES as u64, "{what}: {r}");
        entries
    }
}

/// The publish index in a body `message {i}: ...`.
fn index_of(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).unwrap();
    text["message ".len()..text.find(':').unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn salvage_of_an_intact_database_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    for crashed in [false, true] {
        let image = Image::build(dir.path(), crashed);
        let salvaged = image.salvage(dir.path(), |_| {}).expect("salvaged");
        let r = &salvaged.report;
        println!("{r}");
        assert_eq!(r.kept.messages, MESSAGES as u64, "{r}");
        assert_eq!(r.kept.entries, 2 * MESSAGES as u64, "{r}");
        assert_eq!(
            (r.kept.queues, r.kept.exchanges, r.kept.bindings),
            (2, 1, 2)
        );
        assert_eq!(r.unreadable, warrenmq::SalvageCounts::default());
        assert!(r.page_scanned.is_empty(), "{r}");
        assert_eq!(r.expected.map(|e| e.messages), Some(MESSAGES as u64));
        assert_eq!(
            salvaged.check(&image.confirmed, "intact"),
            2 * MESSAGES as u64
        );
        for bodies in salvaged.bodies.values() {
            let got: BTreeSet<Vec<u8>> = bodies.iter().cloned().collect();
            assert_eq!(got, image.confirmed);
        }
    }
    // The destination must be new.
    let path = dir.path().join("crashed.redb");
    let err = warrenmq::salvage(&path, &path).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}

#[test]
fn salvage_counts_a_damaged_message_as_lost_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::build(dir.path(), false);
    let marker = b"message 150: ";
    let salvaged = image
        .salvage(dir.path(), |bytes| {
            // Every copy of the record (freed pages keep older copies of a leaf).
            let hits: Vec<usize> = bytes
                .windows(marker.len())
                .enumerate()
                .filter(|(_, w)| *w == marker)
                .map(|(i, _)| i)
                .collect();
            assert!(!hits.is_empty());
            for at in hits {
                bytes[at + marker.len() + 3] ^= 0x10;
            }
        })
        .expect("salvaged");
    let r = &salvaged.report;
    println!("{r}");
    assert_eq!(r.kept.messages, MESSAGES as u64 - 1, "{r}");
    assert_eq!(r.kept.entries, 2 * (MESSAGES as u64 - 1), "{r}");
    assert_eq!(r.entries_without_message, 2, "{r}");
    assert!(r.unreadable.messages >= 1, "{r}");
    assert_eq!(r.unreadable.entries, 0, "{r}");
    assert_eq!(r.page_scanned, ["messages"], "{r}");
    assert!(r.to_string().contains("lost: 2 queue entries"), "{r}");
    salvaged.check(&image.confirmed, "one damaged message");
    for bodies in salvaged.bodies.values() {
        assert!(bodies.iter().all(|b| index_of(b) != 150));
    }
}

/// One way to damage a database image.
type Damage = Box<dyn FnOnce(&mut Vec<u8>)>;

/// Salvages every damage of [`run_all`] (fewer flips) and checks each result.
fn salvage_all(crashed: bool, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::build(dir.path(), crashed);
    let len = image.db.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut salvaged, mut refused, mut everything) = (0, 0, 0);
    let mut damages: Vec<(String, Damage)> = Vec::new();
    for cut in [4096, len / 2, len - 4096] {
        damages.push((
            format!("truncated to {cut}"),
            Box::new(move |b| b.truncate(cut)),
        ));
    }
    for _ in 0..FLIPS / 2 {
        let bit = rng.gen_range(0..len * 8);
        damages.push((
            format!("bit {bit} flipped"),
            Box::new(move |b| b[bit / 8] ^= 1 << (bit % 8)),
        ));
    }
    for (what, damage) in damages {
        match image.salvage(dir.path(), damage) {
            None => refused += 1,
            Some(s) => {
                salvaged += 1;
                if s.check(&image.confirmed, &what) == 2 * MESSAGES as u64 {
                    everything += 1;
                }
            }
        }
    }
    println!(
        "{} image: {salvaged} salvaged ({everything} with every message), {refused} refused",
        if crashed { "crash" } else { "clean" }
    );
    assert_eq!(refused, 0, "salvage always writes what it can read");
}

#[test]
fn salvage_of_damaged_clean_databases_keeps_only_true_records() {
    salvage_all(false, 0x5a1_0001);
}

#[test]
fn salvage_of_damaged_crashed_databases_keeps_only_true_records() {
    salvage_all(true, 0x5a1_0002);
}
