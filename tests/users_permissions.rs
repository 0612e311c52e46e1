//! Users, permissions and vhosts in process: `Broker::connect_as` checks each operation as
//! RabbitMQ does (the wire is compared with RabbitMQ in interop/tests/permissions.rs), users
//! and permissions survive a restart of a persistent broker, the default user is created
//! once, and deleted vhosts refuse their connections.

use warrenmq::{
    Broker, ConsumeOptions, Error, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeKind,
    FieldTable, GetOptions, HashingAlgorithm, Message, PasswordHash, Permissions, Properties,
    QueueDeclareOptions, QueueDeleteOptions,
};

const NONE: &str = "^nothing$";

fn refused(kind: &str, name: &str, user: &str) -> String {
    format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user '{user}'")
}

/// A broker with exchange `src`, queue `q` bound to it, and user `u` with `perms` on `/`.
fn setup(perms: Permissions) -> Broker {
    let broker = Broker::in_memory();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let x = ExchangeDeclareOptions::default();
    ch.exchange_declare("src", ExchangeKind::Direct, x, FieldTable::new())
        .unwrap();
    ch.exchange_declare("dst", ExchangeKind::Fanout, x, FieldTable::new())
        .unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    ch.queue_bind("q", "src", "k", FieldTable::new()).unwrap();
    broker.add_user("u", "pw", &[]).unwrap();
    broker.set_permissions("u", "/", perms).unwrap();
    broker
}

/// Runs `op` on a fresh channel of `u` and returns the error text, or "ok".
fn answer(broker: &Broker, op: impl FnOnce(&warrenmq::Channel) -> Result<(), Error>) -> String {
    let ch = broker.connect_as("u", "/").unwrap().open_channel().unwrap();
    match op(&ch) {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_operation_checks_its_resource() {
    let full = ".*";
    let configure_none = || setup(Permissions::new(NONE, full, full));
    let write_none = || setup(Permissions::new(full, NONE, full));
    let read_none = || setup(Permissions::new(full, full, NONE));
    let q = QueueDeclareOptions::default();
    let x = ExchangeDeclareOptions::default();
    let no = FieldTable::new;

    // configure: declares and deletes.
    let b = configure_none();
    assert_eq!(
        answer(&b, |ch| ch.queue_declare("new", q, no()).map(drop)),
        refused("queue", "new", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.exchange_declare(
            "nx",
            ExchangeKind::Topic,
            x,
            no()
        )),
        refused("exchange", "nx", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch
            .queue_delete("q", QueueDeleteOptions::default())
            .map(drop)),
        refused("queue", "q", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch
            .exchange_delete("missing", ExchangeDeleteOptions::default())),
        refused("exchange", "missing", "u")
    );
    // Passive declares need nothing; reserved names are refused as such first.
    assert_eq!(
        answer(&b, |ch| ch
            .queue_declare("q", QueueDeclareOptions { passive: true, ..q }, no())
            .map(drop)),
        "ok"
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_declare("amq.q", q, no()).map(drop)),
        "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
    );
    assert!(answer(&b, |ch| ch.queue_declare("", q, no()).map(drop)).contains("queue 'amq.gen-"));
    // Publishing, getting and binding need no configure.
    assert_eq!(
        answer(&b, |ch| ch.basic_publish("src", "k", Message::new("m"))),
        "ok"
    );
    assert_eq!(
        answer(&b, |ch| ch.basic_get("q", GetOptions::no_ack()).map(drop)),
        "ok"
    );

    // write: publish, bind destinations, dead-letter and alternate exchanges.
    let b = write_none();
    assert_eq!(
        answer(&b, |ch| ch.basic_publish("src", "k", Message::new("m"))),
        refused("exchange", "src", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.basic_publish("", "q", Message::new("m"))),
        refused("exchange", "amq.default", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_bind("q", "src", "k2", no())),
        refused("queue", "q", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.exchange_bind("dst", "src", "k", no())),
        refused("exchange", "dst", "u")
    );
    let dlx = FieldTable::new().with("x-dead-letter-exchange", "dst");
    assert_eq!(
        answer(&b, |ch| ch.queue_declare("dl", q, dlx).map(drop)),
        refused("exchange", "dst", "u")
    );
    let ae = FieldTable::new().with("alternate-exchange", "dst");
    assert_eq!(
        answer(&b, |ch| ch.exchange_declare(
            "nx",
            ExchangeKind::Topic,
            x,
            ae
        )),
        refused("exchange", "dst", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_declare("plain", q, no()).map(drop)),
        "ok"
    );

    // read: get, consume, purge, bind sources.
    let b = read_none();
    assert_eq!(
        answer(&b, |ch| ch.basic_get("q", GetOptions::no_ack()).map(drop)),
        refused("queue", "q", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch
            .basic_consume("q", ConsumeOptions::default())
            .map(drop)),
        refused("queue", "q", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_purge("q").map(drop)),
        refused("queue", "q", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_bind("q", "src", "k2", no())),
        refused("exchange", "src", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.queue_unbind("q", "src", "k", no())),
        refused("exchange", "src", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.exchange_unbind("dst", "src", "k", no())),
        refused("exchange", "src", "u")
    );
    assert_eq!(
        answer(&b, |ch| ch.basic_publish("src", "k", Message::new("m"))),
        "ok"
    );
}

#[test]
fn user_id_vhost_access_and_live_changes() {
    let broker = setup(Permissions::full());
    let props = Properties {
        user_id: Some("someone".into()),
        ..Properties::default()
    };
    assert_eq!(
        answer(&broker, |ch| ch.basic_publish(
            "src",
            "k",
            Message::with_properties("m", props.clone())
        )),
        "PRECONDITION_FAILED - user_id property set to 'someone' but authenticated user was 'u'"
    );
    // A trusted connection is not checked.
    let trusted = broker.connect("/").unwrap().open_channel().unwrap();
    trusted
        .basic_publish("src", "k", Message::with_properties("m", props))
        .unwrap();

    // An open channel sees permission changes and the user's deletion at once.
    let ch = broker.connect_as("u", "/").unwrap().open_channel().unwrap();
    ch.basic_publish("src", "k", Message::new("m")).unwrap();
    broker
        .set_permissions("u", "/", Permissions::new(".*", "^q$", ".*"))
        .unwrap();
    assert_eq!(
        ch.basic_publish("src", "k", Message::new("m"))
            .unwrap_err()
            .to_string(),
        refused("exchange", "src", "u")
    );
    let ch = broker.connect_as("u", "/").unwrap().open_channel().unwrap();
    broker.delete_user("u").unwrap();
    assert_eq!(
        ch.basic_get("q", GetOptions::no_ack())
            .unwrap_err()
            .reply_code()
            .0,
        403
    );

    let err = broker.connect_as("u", "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "NOT_ALLOWED - access to vhost '/' refused for user 'u'"
    );
    assert_eq!(err.reply_code().0, 530);
    assert_eq!(
        broker
            .connect_as("guest", "nowhere")
            .unwrap_err()
            .reply_code()
            .0,
        530
    );
    assert_eq!(broker.delete_user("u").unwrap_err().reply_code().0, 404);
    assert_eq!(
        broker
            .set_permissions("guest", "/", Permissions::new("(", ".*", ".*"))
            .unwrap_err()
            .reply_code()
            .0,
        406
    );
}

#[test]
fn deleted_vhosts_refuse_their_connections() {
    let broker = Broker::in_memory();
    broker.add_vhost("tenant").unwrap();
    broker
        .set_permissions("guest", "tenant", Permissions::full())
        .unwrap();
    let conn = broker.connect_as("guest", "tenant").unwrap();
    let ch = conn.open_channel().unwrap();
    ch.queue_declare("jobs", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    let consumer = ch.basic_consume("jobs", ConsumeOptions::default()).unwrap();
    broker.delete_vhost("tenant").unwrap();
    assert!(consumer.recv().is_err(), "its consumers are cancelled");
    let err = ch.basic_publish("", "jobs", Message::new("m")).unwrap_err();
    assert_eq!(err.to_string(), "NOT_ALLOWED - vhost 'tenant' is deleted");
    assert!(conn.open_channel().is_err());
    assert!(broker.user_permissions("guest", "tenant").is_none());
    assert_eq!(
        broker.delete_vhost("tenant").unwrap_err().reply_code().0,
        530
    );
    // A vhost of the same name starts empty.
    broker.add_vhost("tenant").unwrap();
    let ch = broker.connect("tenant").unwrap().open_channel().unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    assert_eq!(
        ch.queue_declare("jobs", passive, FieldTable::new())
            .unwrap_err()
            .reply_code()
            .0,
        404
    );
}

#[test]
fn users_and_permissions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warren.redb");
    let imported = PasswordHash::from_base64(
        HashingAlgorithm::Sha256,
        // RabbitMQ 3.10's hash of "guest".
        "P0j0wOIKdZt4DAvd585hhL5aE8Eftx96ysBa7rDkr8EXazcs",
    )
    .unwrap();
    {
        let broker = Broker::open(&path).unwrap();
        assert!(
            broker.authenticate("guest", "guest").is_ok(),
            "the default user"
        );
        broker.add_vhost("v").unwrap();
        broker.add_user("app", "s3cret", &["monitoring"]).unwrap();
        broker
            .add_user_with_hash("imported", Some(imported), vec![])
            .unwrap();
        broker
            .set_permissions("app", "v", Permissions::new("^app", "", ".*"))
            .unwrap();
        broker.delete_user("guest").unwrap();
    }
    let broker = Broker::open(&path).unwrap();
    assert!(
        broker.user("guest").is_none(),
        "a deleted default user is not created again"
    );
    let app = broker.authenticate("app", "s3cret").unwrap();
    assert_eq!(app.tags, vec!["monitoring".to_owned()]);
    assert!(broker.authenticate("app", "wrong").is_err());
    assert!(broker.authenticate("imported", "guest").is_ok());
    assert_eq!(
        broker.user_permissions("app", "v"),
        Some(Permissions::new("^app", "", ".*"))
    );
    broker.delete_vhost("v").unwrap();
    drop(broker);
    let broker = Broker::open(&path).unwrap();
    assert!(
        broker.permissions().is_empty(),
        "{:?}",
        broker.permissions()
    );
    assert_eq!(broker.vhosts(), vec!["/".to_owned()]);
}
