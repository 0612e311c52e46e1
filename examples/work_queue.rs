//! Work queues: competing consumers share one durable queue; `basic_qos(1)` gives each
//! worker one unacknowledged task at a time, so a slow worker does not hoard tasks.
//!
//! Run with `cargo run --example work_queue`.

use std::thread;
use std::time::Duration;

use warrenmq::{Broker, ConsumeOptions, FieldTable, Message, QueueDeclareOptions};

fn main() -> Result<(), warrenmq::Error> {
    let broker = Broker::in_memory();
    let conn = broker.connect("/")?;
    let ch = conn.open_channel()?;
    ch.queue_declare(
        "task_queue",
        QueueDeclareOptions::durable(),
        FieldTable::new(),
    )?;

    let workers: Vec<_> = (1..=3)
        .map(|worker| {
            let ch = conn.open_channel()?;
            ch.basic_qos(1)?;
            let consumer = ch.basic_consume("task_queue", ConsumeOptions::default())?;
            Ok(thread::spawn(move || -> Result<usize, warrenmq::Error> {
                let mut done = 0;
                while let Ok(task) = consumer.recv_timeout(Duration::from_millis(300)) {
                    let text = String::from_utf8_lossy(task.body()).into_owned();
                    // A task's dots say how long it takes, as in the RabbitMQ tutorial.
                    thread::sleep(Duration::from_millis(10 * text.matches('.').count() as u64));
                    println!("worker {worker} done: {text}");
                    task.ack()?;
                    done += 1;
                }
                drop(ch);
                Ok(done)
            }))
        })
        .collect::<Result<_, warrenmq::Error>>()?;

    for i in 0..12 {
        let dots = ".".repeat(i % 4 + 1);
        ch.basic_publish(
            "",
            "task_queue",
            Message::new(format!("task {i}{dots}")).persistent(),
        )?;
    }
    let total: usize = workers
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .sum::<Result<usize, _>>()?;
    println!("{total} tasks done");
    Ok(())
}
