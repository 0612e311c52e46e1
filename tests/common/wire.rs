//! A broker served on a free loopback port, for tests of the wire listener.

use warrenmq::{Broker, WireServer};

/// An in-memory broker and its listener on `127.0.0.1:0`.
pub fn serve() -> (Broker, WireServer) {
    let broker = Broker::in_memory();
    let server = broker.serve("127.0.0.1:0").expect("binds");
    (broker, server)
}
