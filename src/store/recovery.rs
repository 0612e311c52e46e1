//! [`RecoveredState`]: what a persistent broker rebuilds itself from at open.

use std::sync::Arc;

use super::records::{
    BindingRecord, ExchangeRecord, MessageId, MessageRecord, QueueRecord, VhostRecord,
};

/// Everything stored, as read at open: entities, and per durable queue its messages in order.
#[derive(Clone, Debug, Default)]
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
    /// Durable queues with their messages, by (vhost, name).
    pub(crate) queues: Vec<RecoveredQueue>,
    /// Durable bindings, by (vhost, source, destination, ...).
    pub(crate) bindings: Vec<BindingRecord>,
}

/// A durable queue and the messages it held.
#[derive(Clone, Debug)]
pub(crate) struct RecoveredQueue {
    /// The queue.
    pub(crate) record: QueueRecord,
    /// Its messages, in position (`seq`) order.
    pub(crate) messages: Vec<RecoveredMessage>,
}

impl RecoveredQueue {
    /// Returns the first position after every recovered one: where new messages continue.
    pub(crate) fn next_seq(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.seq.saturating_add(1))
    }
}

/// One message of a recovered queue.
#[derive(Clone, Debug)]
pub(crate) struct RecoveredMessage {
    /// Its position in the queue.
    pub(crate) seq: u64,
    /// The stored message's id (acks name the entry, not the id; kept for diagnostics).
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

    use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};

    use super::{RecoveredMessage, RecoveredQueue, RecoveredState};
    use crate::store::codec::{self, RecordKey};
    use crate::store::commit::{self, Counts, COMMIT};
    use crate::store::records::{EntryRecord, MessageRecord, QueueRecord};
    use crate::store::tables::{BINDINGS, EXCHANGES, MESSAGES, QUEUES, QUEUE_ENTRIES, VHOSTS};
    use crate::store::StoreError;

    /// Reads everything in one read transaction (a consistent snapshot).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an undecodable or damaged record (every record carries a
    /// checksum), an entry whose message is missing, or fewer rows than the last commit
    /// recorded (entries of a queue that does not exist count as missing): recovery refuses
    /// rather than drops data.
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
            queues: Vec::with_capacity(queue_records.len()),
            bindings: values(&txn.open_table(BINDINGS)?, |k, v| {
                codec::decode(RecordKey::Binding(k.0, k.1, k.2, k.3, k.4, k.5), v)
            })?,
        };
        let mut messages = MessageCache::new(&txn)?;
        for record in queue_records {
            let mut queue = RecoveredQueue {
                record,
                messages: Vec::new(),
            };
            read_entries(&txn, &mut queue, &mut messages, clean_shutdown)?;
            state.queues.push(queue);
        }
        let read = Counts {
            vhosts: state.vhosts.len() as u64,
            exchanges: state.exchanges.len() as u64,
            queues: state.queues.len() as u64,
            bindings: state.bindings.len() as u64,
            messages: messages.decoded.len() as u64,
            entries: state.queues.iter().map(|q| q.messages.len() as u64).sum(),
        };
        check_counts(&recorded, &read)?;
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

    /// Reads one queue's entries in seq order.
    fn read_entries(
        txn: &ReadTransaction,
        queue: &mut RecoveredQueue,
        messages: &mut MessageCache,
        clean_shutdown: bool,
    ) -> Result<(), StoreError> {
        let entries = txn.open_table(QUEUE_ENTRIES)?;
        let (vhost, name) = (queue.record.vhost.as_str(), queue.record.name.as_str());
        for row in entries.range((vhost, name, 0)..=(vhost, name, u64::MAX))? {
            let (key, value) = row?;
            let seq = key.value().2;
            let entry: EntryRecord =
                codec::decode(RecordKey::Entry(vhost, name, seq), value.value())?;
            let message = messages.get(entry.message_id.0).map_err(|e| match e {
                StoreError::Corrupt { reason } => StoreError::corrupt(format!(
                    "entry {seq} of queue '{name}' in vhost '{vhost}': {reason}"
                )),
                other => other,
            })?;
            queue.messages.push(RecoveredMessage {
                seq,
                id: entry.message_id,
                redelivered: entry.delivered || !clean_shutdown,
                message,
            });
        }
        Ok(())
    }

    /// Fails unless exactly the rows the last commit recorded were read: fewer means rows
    /// were lost in a way redb did not notice (or entries belong to no stored queue), more
    /// means the commit record does not belong to these tables.
    fn check_counts(recorded: &Counts, read: &Counts) -> Result<(), StoreError> {
        if recorded == read {
            return Ok(());
        }
        Err(StoreError::corrupt(format!(
            "the last commit recorded other numbers of rows than could be read: {}",
            recorded.shortfall(read)
        )))
    }

    /// Decodes each message once, however many queues hold it, so they share one body.
    struct MessageCache {
        /// The messages table.
        table: ReadOnlyTable<u64, &'static [u8]>,
        /// Messages decoded so far.
        decoded: HashMap<u64, Arc<MessageRecord>>,
    }

    impl MessageCache {
        /// Opens the messages table.
        fn new(txn: &ReadTransaction) -> Result<Self, StoreError> {
            Ok(MessageCache {
                table: txn.open_table(MESSAGES)?,
                decoded: HashMap::new(),
            })
        }

        /// Returns message `id`.
        fn get(&mut self, id: u64) -> Result<Arc<MessageRecord>, StoreError> {
            if let Some(message) = self.decoded.get(&id) {
                return Ok(message.clone());
            }
            let value = self
                .table
                .get(id)?
                .ok_or_else(|| StoreError::corrupt(format!("message {id} is missing")))?;
            let message = Arc::new(codec::decode::<MessageRecord>(
                RecordKey::Message(id),
                value.value(),
            )?);
            self.decoded.insert(id, message.clone());
            Ok(message)
        }
    }
}
