//! Salvage carries users, permissions and policies (the `auth` and `policies` tables) like
//! the other tables: every readable record is kept, a damaged one is counted unreadable in
//! the report, never dropped silently; logins work on the salvaged database.
#![cfg(feature = "persistence")]

use std::path::Path;

use warrenmq::{
    salvage, Broker, FieldTable, Message, Permissions, Policy, QueueDeclareOptions, SalvageReport,
};

/// A tag only alice's user record holds, so that a test can damage that record alone.
const MARKER: &str = "tag-only-in-alices-record";

/// Builds a database with users, permissions, a policy and messages, closed cleanly.
fn build(path: &Path) {
    let broker = Broker::open(path).unwrap();
    broker.add_vhost("shop").unwrap();
    broker
        .add_user("alice", "s3cret", &["monitoring", MARKER])
        .unwrap();
    broker
        .set_permissions("alice", "shop", Permissions::new("^alice\\.", ".*", ".*"))
        .unwrap();
    let policy = Policy::new("short", "^orders$", FieldTable::new().with("max-length", 5));
    broker.set_policy("shop", policy).unwrap();
    let ch = broker.connect("shop").unwrap().open_channel().unwrap();
    ch.queue_declare("orders", QueueDeclareOptions::durable(), FieldTable::new())
        .unwrap();
    ch.confirm_select().unwrap();
    for i in 0..5 {
        let body = format!("order {i}: {}", "x".repeat(40));
        ch.basic_publish("", "orders", Message::new(body).persistent())
            .unwrap();
    }
    assert!(ch.wait_for_confirms().unwrap());
    drop(ch);
    broker.close().unwrap();
}

/// Flips a bit inside every copy of `marker` in the file at `path` (freed pages keep older
/// copies of a leaf); returns how many copies there were.
fn damage(path: &Path, marker: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i)
        .collect();
    for &at in &hits {
        bytes[at + 3] ^= 0x10;
    }
    std::fs::write(path, bytes).unwrap();
    hits.len()
}

fn salvaged(dir: &Path) -> (SalvageReport, Broker) {
    let out = dir.join("salvaged.redb");
    let report = salvage(dir.join("warren.redb"), &out).expect("salvaged");
    println!("{report}");
    (
        report,
        Broker::open(&out).expect("the salvaged database opens"),
    )
}

#[test]
fn users_permissions_and_policies_survive_a_damaged_message_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    build(&path);
    assert!(damage(&path, b"order 2: ") > 0);
    // The damaged file is refused as it is.
    assert!(Broker::open(&path).is_err());

    let (report, broker) = salvaged(dir.path());
    assert_eq!(report.kept.messages, 4, "{report}");
    assert!(report.unreadable.messages >= 1, "{report}");
    // guest and alice; guest on '/', alice on 'shop'; one policy.
    assert_eq!(
        (
            report.kept.users,
            report.kept.permissions,
            report.kept.policies
        ),
        (2, 2, 1),
        "{report}"
    );
    assert_eq!(
        (
            report.unreadable.users,
            report.unreadable.permissions,
            report.unreadable.policies
        ),
        (0, 0, 0),
        "{report}"
    );
    assert!(
        report.to_string().contains("2 users, 2 permissions"),
        "{report}"
    );

    // Logins work as before, with the same permissions and tags.
    let alice = broker
        .authenticate("alice", "s3cret")
        .expect("alice logs in");
    assert!(alice.has_tag("monitoring"), "{alice:?}");
    assert!(broker.authenticate("alice", "wrong").is_err());
    assert!(broker.authenticate("guest", "guest").is_ok());
    let perms = broker.permissions();
    let alices = perms
        .iter()
        .find(|p| p.user == "alice" && p.vhost == "shop")
        .expect("alice's permissions");
    assert_eq!(
        alices.permissions,
        Permissions::new("^alice\\.", ".*", ".*")
    );
    let ch = broker
        .connect_as("alice", "shop")
        .unwrap()
        .open_channel()
        .unwrap();
    // Her configure pattern still holds: 'orders' is not hers to declare.
    let refused = ch.queue_declare("orders", QueueDeclareOptions::durable(), FieldTable::new());
    assert_eq!(refused.unwrap_err().reply_code().0, 403);
    // The policy applies again.
    let stats = broker.queue_stats("shop", "orders").unwrap();
    assert_eq!(stats.policy.as_deref(), Some("short"), "{stats:?}");
    assert_eq!(stats.messages_ready, 4);
}

#[test]
fn a_damaged_user_record_is_reported_not_dropped_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    build(&path);
    assert!(damage(&path, MARKER.as_bytes()) > 0);

    let (report, broker) = salvaged(dir.path());
    assert_eq!(report.unreadable.users, 1, "{report}");
    assert_eq!(report.kept.users, 1, "guest only: {report}");
    assert!(report.page_scanned.iter().any(|t| t == "auth"), "{report}");
    assert!(
        report.to_string().contains("could not read: ") && report.to_string().contains("1 users"),
        "{report}"
    );
    // Everything else is there: guest logs in, the messages and the policy are kept.
    assert_eq!(report.kept.messages, 5, "{report}");
    assert_eq!(report.kept.policies, 1, "{report}");
    assert!(broker.authenticate("guest", "guest").is_ok());
    assert!(broker.authenticate("alice", "s3cret").is_err());
}
