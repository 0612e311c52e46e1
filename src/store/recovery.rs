//! [`RecoveredState`]: what a persistent broker rebuilds itself from at open.

use std::fmt;
use std::sync::Arc;

use super::records::{
    AuthRecord, BindingRecord, ExchangeRecord, MessageId, MessageRecord, PolicyRecord, QueueRecord,
    VhostRecord,
};
use super::StoreError;

/// Everything stored, as read at open: entities, and the durable queues whose messages
/// [`RecoveredState::source`] streams queue by queue (or, from
/// [`Store::load_all`](super::Store::load_all), collected in [`RecoveredQueue::messages`]).
#[derive(Default)]
pub(crate) struct RecoveredState {
    /// `false` if the previous session did not close the store (a crash): every recovered
    /// message is then marked redelivered.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "diagnostic; checked by the store's tests")
    )]
    pub(crate) clean_shutdown: bool,
    /// Stored vhosts, by name.
    pub(crate) vhosts: Vec<VhostRecord>,
    /// Durable exchanges, by (vhost, name).
    pub(crate) exchanges: Vec<ExchangeRecord>,
    /// Durable queues, by (vhost, name); their messages come from `source`.
    pub(crate) queues: Vec<RecoveredQueue>,
    /// Durable bindings, by (vhost, source, destination, ...).
    pub(crate) bindings: Vec<BindingRecord>,
    /// Streams the messages of each queue from the same snapshot as the entities; `None`
    /// once taken (or for a store without messages).
    pub(crate) source: Option<Box<dyn MessageSource>>,
    /// Policies, by (vhost, name).
    pub(crate) policies: Vec<PolicyRecord>,
    /// Users, permissions and the defaults mark.
    pub(crate) auth: Vec<AuthRecord>,
}

impl fmt::Debug for RecoveredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveredState")
            .field("clean_shutdown", &self.clean_shutdown)
            .field("vhosts", &self.vhosts)
            .field("exchanges", &self.exchanges)
            .field("queues", &self.queues)
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

/// Streams recovered messages queue by queue, so that recovery never holds every stored
/// message at once.
pub(crate) trait MessageSource {
    /// Calls `each` with every message of `queue`, in position order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a damaged entry or message, or an entry whose message is
    /// missing; storage errors as they come.
    fn stream(
        &mut self,
        queue: &QueueRecord,
        each: &mut dyn FnMut(RecoveredMessage),
    ) -> Result<(), StoreError>;

    /// Once every queue was streamed: checks that exactly the rows the last commit recorded
    /// were read.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] naming the tables that fell short.
    fn finish(self: Box<Self>) -> Result<(), StoreError>;
}

/// A durable queue, and (only from `load_all`) the messages it held.
#[derive(Clone, Debug)]
pub(crate) struct RecoveredQueue {
    /// The queue.
    pub(crate) record: QueueRecord,
    /// Its messages, in position (`seq`) order, when collected by `load_all`.
    pub(crate) messages: Vec<RecoveredMessage>,
}

impl RecoveredQueue {
    /// Returns the first position after every collected one: where new messages continue.
    #[cfg_attr(not(test), allow(dead_code, reason = "used by the store's tests"))]
    pub(crate) fn next_seq(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.seq.saturating_add(1))
    }
}

/// One message of a recovered queue.
#[derive(Clone, Debug)]
pub(crate) struct RecoveredMessage {
    /// Its position in the queue.
    pub(crate) seq: u64,
    /// The stored message's id: what a queue that keeps the message on disk only remembers.
    pub(crate) id: MessageId,
    /// `true` if it was delivered before the restart and not acked (or if the previous
    /// session crashed): deliver it with `redelivered = true`.
    pub(crate) redelivered: bool,
    /// The message, shared between the queues that hold it.
    pub(crate) message: Arc<MessageRecord>,
}

#[cfg(feature = "persistence")]
pub(crate) use self::load::load;

/// Reading a redb database into a [`RecoveredState`].
#[cfg(feature = "persistence")]
mod load {
    use std::collections::HashMap;
    use std::sync::Arc;

    use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

    use super::{MessageSource, RecoveredMessage, RecoveredQueue, RecoveredState};
    use crate::store::codec::{self, RecordKey};
    use crate::store::commit::{self, Counts, COMMIT};
    use crate::store::records::{EntryRecord, MessageRecord, QueueRecord};
    use crate::store::tables::{
        AUTH, BINDINGS, EXCHANGES, MESSAGES, MESSAGE_REFS, POLICIES, QUEUES, QUEUE_ENTRIES, VHOSTS,
    };
    use crate::store::StoreError;

    /// Reads the entities in one read transaction (a consistent snapshot) and returns them
    /// with a [`MessageSource`] on the same snapshot.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an undecodable or damaged record (every record carries a
    /// checksum); the message source checks the rest (see [`RedbSource`]).
    pub(crate) fn load(db: &Database, clean_shutdown: bool) -> Result<RecoveredState, StoreError> {
        let txn = db.begin_read()?;
        let recorded = commit::read(&txn.open_table(COMMIT)?)?.counts;
        let queue_records: Vec<QueueRecord> = values(&txn.open_table(QUEUES)?, |k, v| {
            codec::decode(RecordKey::Queue(k.0, k.1), v)
        })?;
        let mut state = RecoveredState {
            clean_shutdown,
            vhosts: values(&txn.open_table(VHOSTS)?, |k, v| {
                codec::decode(RecordKey::Vhost(k), v)
            })?,
            exchanges: values(&txn.open_table(EXCHANGES)?, |k, v| {
                codec::decode(RecordKey::Exchange(k.0, k.1), v)
            })?,
            queues: queue_records
                .into_iter()
                .map(|record| RecoveredQueue {
                    record,
                    messages: Vec::new(),
                })
                .collect(),
            bindings: values(&txn.open_table(BINDINGS)?, |k, v| {
                codec::decode(RecordKey::Binding(k.0, k.1, k.2, k.3, k.4, k.5), v)
            })?,
            source: None,
            policies: values(&txn.open_table(POLICIES)?, |k, v| {
                codec::decode(RecordKey::Policy(k.0, k.1), v)
            })?,
            auth: values(&txn.open_table(AUTH)?, |k, v| {
                codec::decode(RecordKey::Auth(k.0, k.1, k.2), v)
            })?,
        };
        let read = Counts {
            vhosts: state.vhosts.len() as u64,
            exchanges: state.exchanges.len() as u64,
            queues: state.queues.len() as u64,
            bindings: state.bindings.len() as u64,
            messages: 0,
            entries: 0,
        };
        state.source = Some(Box::new(RedbSource {
            entries: txn.open_table(QUEUE_ENTRIES)?,
            messages: txn.open_table(MESSAGES)?,
            refs: txn.open_table(MESSAGE_REFS)?,
            shared: HashMap::new(),
            clean_shutdown,
            recorded,
            read,
        }));
        Ok(state)
    }

    /// Decodes every value of a table, in key order, with `decode` (which checks each
    /// against its key).
    fn values<K: redb::Key + 'static, T>(
        table: &ReadOnlyTable<K, &'static [u8]>,
        decode: impl for<'a> Fn(K::SelfType<'a>, &'a [u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, value) = row?;
            out.push(decode(k.value(), value.value())?);
        }
        Ok(out)
    }

    /// Streams messages from the read transaction of [`load`].
    ///
    /// Each message is decoded once: one held by a single entry is handed over and
    /// forgotten; one held by several (its reference count says how many) is kept, shared,
    /// until its last entry was read. At the end the rows read — entities, queue entries,
    /// distinct messages — must equal the commit record's counts: fewer means rows were
    /// lost in a way redb did not notice (or entries belong to no stored queue), more means
    /// the commit record does not belong to these tables. Recovery refuses rather than
    /// drops data.
    struct RedbSource {
        /// The queue entries.
        entries: ReadOnlyTable<(&'static str, &'static str, u64), &'static [u8]>,
        /// The messages.
        messages: ReadOnlyTable<u64, &'static [u8]>,
        /// The reference counts.
        refs: ReadOnlyTable<u64, u64>,
        /// Messages held by several entries, with how many of those are still to come.
        shared: HashMap<u64, (Arc<MessageRecord>, u32)>,
        /// Whether the previous session closed cleanly.
        clean_shutdown: bool,
        /// What the last commit recorded.
        recorded: Counts,
        /// What was read so far.
        read: Counts,
    }

    impl RedbSource {
        /// Returns message `id`, decoded once however many entries hold it.
        fn message(&mut self, id: u64) -> Result<Arc<MessageRecord>, StoreError> {
            if let Some((message, left)) = self.shared.get_mut(&id) {
                let message = Arc::clone(message);
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.shared.remove(&id);
                }
                return Ok(message);
            }
            let value = self
                .messages
                .get(id)?
                .ok_or_else(|| StoreError::corrupt(format!("message {id} is missing")))?;
            let message = Arc::new(codec::decode::<MessageRecord>(
                RecordKey::Message(id),
                value.value(),
            )?);
            self.read.messages += 1;
            let holders = match self.refs.get(id)? {
                Some(packed) => codec::unpack_refs(id, packed.value())?,
                None => 1,
            };
            if holders > 1 {
                self.shared.insert(id, (Arc::clone(&message), holders - 1));
            }
            Ok(message)
        }
    }

    impl MessageSource for RedbSource {
        fn stream(
            &mut self,
            queue: &QueueRecord,
            each: &mut dyn FnMut(RecoveredMessage),
        ) -> Result<(), StoreError> {
            // redb answers some damaged pages with a panic: the guard makes it an error.
            StoreError::guard("reading the database", || self.stream_queue(queue, each))
        }

        fn finish(self: Box<Self>) -> Result<(), StoreError> {
            if self.recorded == self.read {
                return Ok(());
            }
            Err(StoreError::corrupt(format!(
                "the last commit recorded other numbers of rows than could be read: {}",
                self.recorded.shortfall(&self.read)
            )))
        }
    }

    impl RedbSource {
        /// [`MessageSource::stream`], unguarded.
        fn stream_queue(
            &mut self,
            queue: &QueueRecord,
            each: &mut dyn FnMut(RecoveredMessage),
        ) -> Result<(), StoreError> {
            let (vhost, name) = (queue.vhost.as_str(), queue.name.as_str());
            let range = self
                .entries
                .range((vhost, name, 0)..=(vhost, name, u64::MAX))?;
            for row in range {
                let (key, value) = row?;
                let seq = key.value().2;
                let entry: EntryRecord =
                    codec::decode(RecordKey::Entry(vhost, name, seq), value.value())?;
                self.read.entries += 1;
                let message = self.message(entry.message_id.0).map_err(|e| match e {
                    StoreError::Corrupt { reason } => StoreError::corrupt(format!(
                        "entry {seq} of queue '{name}' in vhost '{vhost}': {reason}"
                    )),
                    other => other,
                })?;
                each(RecoveredMessage {
                    seq,
                    id: entry.message_id,
                    redelivered: entry.delivered || !self.clean_shutdown,
                    message,
                });
            }
            Ok(())
        }
    }
}
