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
    is_send::<BrokerBuilder>();
}
