use std::time::Instant;
use warrenmq::*;
fn main() {
    let n = 2_000_000usize;
    let body = bytes::Bytes::from(vec![7u8; 100]);
    // crossbeam
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let t = Instant::now();
    let b2 = body.clone();
    let h = std::thread::spawn(move || {
        for _ in 0..n {
            tx.send(Message::new(b2.clone())).unwrap();
        }
    });
    for _ in 0..n {
        let m = rx.recv().unwrap();
        std::hint::black_box(m);
    }
    h.join().unwrap();
    let cb = n as f64 / t.elapsed().as_secs_f64();
    for ack in [false, true] {
        let broker = Broker::in_memory();
        let conn = broker.connect("/").unwrap();
        let ch = conn.open_channel().unwrap();
        ch.queue_declare("q", QueueDeclareOptions::default(), FieldTable::new())
            .unwrap();
        let cch = conn.open_channel().unwrap();
        if ack {
            cch.basic_qos(1000).unwrap();
        }
        let c = cch
            .basic_consume(
                "q",
                if ack {
                    ConsumeOptions::default()
                } else {
                    ConsumeOptions::no_ack()
                },
            )
            .unwrap();
        let t = Instant::now();
        let b2 = body.clone();
        let h = std::thread::spawn(move || {
            for _ in 0..n {
                ch.basic_publish("", "q", Message::new(b2.clone())).unwrap();
            }
            ch
        });
        for i in 0..n {
            let d = c.recv().unwrap();
            if ack {
                if i % 100 == 99 {
                    cch.basic_ack(d.delivery_tag(), true).unwrap();
                }
            }
            std::hint::black_box(&d);
        }
        let _ch = h.join().unwrap();
        let w = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "ack={ack} crossbeam {:.0}/s warren {:.0}/s ratio {:.2}",
            cb,
            w,
            w / cb
        );
    }
}
