//! Topology changes against a store whose writes finish only when the test says so: a slow
//! fsync holds up what depends on it, not the vhost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::store::{Durable, MessageId, RecoveredState, Store, StoreError, StoreOp, Tracker};
use crate::sync::Mutex;
use crate::{Broker, Error, ExchangeDeclareOptions, ExchangeKind, FieldTable, QueueDeclareOptions};

/// A store that records its writes and finishes them only in [`GatedStore::finish`], as a
/// disk whose fsync takes as long as the test wants.
#[derive(Debug, Default)]
struct GatedStore {
    /// Completion of the writes.
    tracker: Arc<Tracker>,
    /// Writes submitted, in order.
    ops: Mutex<Vec<StoreOp>>,
    /// Message ids.
    ids: AtomicU64,
}

impl GatedStore {
    /// Waits until `n` writes were submitted.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ops.lock().len() < n {
            assert!(Instant::now() < deadline, "{n} writes never came");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Finishes every write submitted so far with `result`.
    fn finish(&self, result: Result<(), StoreError>) {
        let n = self.ops.lock().len() as u64;
        self.tracker.finish(1, n, result);
    }

    /// A short description of each write so far.
    fn written(&self) -> Vec<String> {
        self.ops
            .lock()
            .iter()
            .map(|op| match op {
                StoreOp::PutExchange(r) => format!("exchange {}", r.name),
                StoreOp::PutQueue(r) => format!("queue {}", r.name),
                StoreOp::PutBinding(r) => format!("bind {} {}", r.source, r.destination),
                StoreOp::DeleteExchange { name, .. } => format!("delete exchange {name}"),
                StoreOp::DeleteQueue(q) => format!("delete queue {}", q.name),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

impl Store for GatedStore {
    fn submit(&self, op: StoreOp) -> Durable {
        let mut ops = self.ops.lock();
        ops.push(op);
        Durable::pending(self.tracker.clone(), ops.len() as u64)
    }

    fn next_message_id(&self) -> MessageId {
        MessageId(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn load(&self) -> Result<RecoveredState, StoreError> {
        Ok(RecoveredState::default())
    }

    fn read_messages(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<Option<crate::store::MessageRecord>>, StoreError> {
        Ok(vec![None; ids.len()])
    }

    fn barrier(&self) -> Durable {
        Durable::done()
    }

    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A broker on a gated store.
fn broker() -> (Broker, Arc<GatedStore>) {
    let store = Arc::new(GatedStore::default());
    let broker = Broker::builder().build_with_store(store.clone());
    (broker, store)
}

/// Runs `f` on a channel of `broker` in a thread.
fn spawn<T: Send + 'static>(
    broker: &Broker,
    f: impl FnOnce(crate::Channel) -> crate::Result<T> + Send + 'static,
) -> thread::JoinHandle<crate::Result<T>> {
    let broker = broker.clone();
    thread::spawn(move || f(broker.connect("/")?.open_channel()?))
}

#[test]
fn declares_continue_while_a_durable_write_waits_for_the_disk() {
    let (broker, store) = broker();
    let durable = ExchangeDeclareOptions::durable();
    let slow = spawn(&broker, move |ch| {
        ch.exchange_declare("slow", ExchangeKind::Direct, durable, FieldTable::new())
    });
    store.wait_for(1);

    // The vhost's other declares, binds and deletes go on while that write is on its way.
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let transient = QueueDeclareOptions::default();
    ch.queue_declare("fast", transient, FieldTable::new())
        .unwrap();
    ch.exchange_declare(
        "fast.x",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::new(),
    )
    .unwrap();
    ch.queue_bind("fast", "fast.x", "", FieldTable::new())
        .unwrap();
    ch.queue_bind("fast", "slow", "k", FieldTable::new())
        .unwrap();
    ch.queue_unbind("fast", "fast.x", "", FieldTable::new())
        .unwrap();
    ch.queue_delete("fast", crate::QueueDeleteOptions::default())
        .unwrap();
    assert!(
        !slow.is_finished(),
        "the durable declare waits for its write"
    );

    // A durable declare made after it is written after it, and answered after it; so is a
    // redeclare of the exchange whose write is still on its way.
    let after = spawn(&broker, |ch| {
        ch.queue_declare("after", QueueDeclareOptions::durable(), FieldTable::new())
            .map(drop)
    });
    store.wait_for(2);
    let again = spawn(&broker, move |ch| {
        ch.exchange_declare("slow", ExchangeKind::Direct, durable, FieldTable::new())
    });
    thread::sleep(Duration::from_millis(50));
    assert!(!after.is_finished() && !again.is_finished());
    assert_eq!(store.written(), ["exchange slow", "queue after"]);

    store.finish(Ok(()));
    slow.join().unwrap().unwrap();
    after.join().unwrap().unwrap();
    again.join().unwrap().unwrap();
}

#[test]
fn a_declare_whose_write_fails_is_undone() {
    let (broker, store) = broker();
    let failing = spawn(&broker, |ch| {
        ch.exchange_declare(
            "lost",
            ExchangeKind::Topic,
            ExchangeDeclareOptions::durable(),
            FieldTable::new(),
        )?;
        Ok(())
    });
    store.wait_for(1);
    let queue = spawn(&broker, |ch| {
        ch.queue_declare("lost.q", QueueDeclareOptions::durable(), FieldTable::new())
            .map(drop)
    });
    store.wait_for(2);
    store.finish(Err(StoreError::corrupt("the disk went away")));
    for outcome in [failing.join().unwrap(), queue.join().unwrap()] {
        assert!(matches!(outcome, Err(Error::Storage(_))), "{outcome:?}");
    }
    let ch = broker.connect("/").unwrap().open_channel().unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let err = ch
        .exchange_declare("lost", ExchangeKind::Topic, passive, FieldTable::new())
        .unwrap_err();
    assert_eq!(err.reply_code().0, 404);
}
