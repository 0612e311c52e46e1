//! RPC: the client sends a request with `reply_to` (its exclusive callback queue) and a
//! `correlation_id`; the server answers to that queue with the same id.
//!
//! Run with `cargo run --example rpc`.

use std::thread;

use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};

fn fib(n: u64) -> u64 {
    (0..n).fold((0, 1), |(a, b), _| (b, a + b)).0
}

fn main() -> Result<(), warrenmq::Error> {
    let broker = Broker::in_memory();

    // The server: one thread answering requests on `rpc_queue`.
    let server_conn = broker.connect("/")?;
    let server = server_conn.open_channel()?;
    server.queue_declare(
        "rpc_queue",
        QueueDeclareOptions::default(),
        FieldTable::new(),
    )?;
    server.basic_qos(1)?;
    let requests =
        server.basic_consume("rpc_queue", ConsumeOptions::default().tag("rpc-server"))?;
    let handle = thread::spawn(move || -> Result<(), warrenmq::Error> {
        for request in requests.iter() {
            let n: u64 = String::from_utf8_lossy(request.body()).parse().unwrap_or(0);
            let props = request.properties();
            if let (Some(reply_to), Some(id)) = (&props.reply_to, &props.correlation_id) {
                let answer = Message::new(fib(n).to_string()).correlation_id(id.clone());
                server.basic_publish("", reply_to, answer)?;
            }
            request.ack()?;
        }
        Ok(())
    });

    // The client: an exclusive callback queue, one request per number.
    let client_conn = broker.connect("/")?;
    let client = client_conn.open_channel()?;
    let callback = client
        .queue_declare("", QueueDeclareOptions::exclusive(), FieldTable::new())?
        .queue;
    let replies = client.basic_consume(&callback, ConsumeOptions::no_ack())?;
    for n in [10u64, 20, 30] {
        let id = format!("request-{n}");
        let request = Message::new(n.to_string())
            .reply_to(callback.clone())
            .correlation_id(id.clone());
        client.basic_publish("", "rpc_queue", request)?;
        // One request at a time, so the next reply is ours; a client with several requests
        // in flight would match replies on their correlation id.
        let Ok(reply) = replies.recv() else { break };
        let ours = reply.properties().correlation_id.as_deref() == Some(id.as_str());
        let answer = String::from_utf8_lossy(reply.body());
        println!("fib({n}) = {answer} (reply to {id}: {ours})");
    }
    drop(server_conn);
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok(())
}
