//! Compile-time checks that every public handle can cross threads.

use warrenmq::*;

fn is_send_sync<T: Send + Sync>() {}
fn is_send<T: Send>() {}

#[test]
fn smoke() {
    is_send_sync::<Broker>();
}

#[test]
fn handles_are_send_and_sync() {
    is_send_sync::<Broker>();
    is_send_sync::<Connection>();
    is_send_sync::<Channel>();
    is_send_sync::<Consumer>();
    is_send_sync::<Delivery>();
    is_send_sync::<Message>();
    is_send_sync::<Error>();
    is_send_sync::<ManualClock>();
    is_send_sync::<Returns>();
    is_send_sync::<ReturnedMessage>();
    is_send_sync::<PublishConfirm>();
    is_send::<BrokerBuilder>();
}

#[test]
fn async_faces_are_send() {
    fn is_send_value<T: Send>(_: &T) {}
    let broker = Broker::in_memory();
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
        .unwrap();
    let consumer = ch.basic_consume("q", ConsumeOptions::default()).unwrap();
    let returns = ch.returns();
    // Futures that tokio::spawn and other multi-thread executors accept.
    is_send_value(&consumer.recv_async());
    is_send_value(&returns.recv_async());
    is_send_value(&ch.wait_for_confirms_async());
}
