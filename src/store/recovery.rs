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

    use redb::{
        Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
        ReadableTableMetadata,
    };
    use serde::de::DeserializeOwned;

    use super::{RecoveredMessage, RecoveredQueue, RecoveredState};
    use crate::store::codec;
    use crate::store::records::{EntryRecord, MessageRecord, QueueRecord};
    use crate::store::tables::{BINDINGS, EXCHANGES, MESSAGES, QUEUES, QUEUE_ENTRIES, VHOSTS};
    use crate::store::StoreError;

    /// Reads everything in one read transaction (a consistent snapshot).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for an undecodable record, an entry of a queue that does not
    /// exist or an entry whose message is missing: recovery refuses rather than drops data.
    pub(crate) fn load(db: &Database, clean_shutdown: bool) -> Result<RecoveredState, StoreError> {
        let txn = db.begin_read()?;
        let queue_records: Vec<QueueRecord> = values(&txn.open_table(QUEUES)?)?;
        let mut state = RecoveredState {
            clean_shutdown,
            vhosts: values(&txn.open_table(VHOSTS)?)?,
            exchanges: values(&txn.open_table(EXCHANGES)?)?,
            queues: Vec::with_capacity(queue_records.len()),
            bindings: values(&txn.open_table(BINDINGS)?)?,
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
        check_orphan_entries(&txn, &state)?;
        Ok(state)
    }

    /// Decodes every value of a table, in key order.
    fn values<K: redb::Key + 'static, T: DeserializeOwned>(
        table: &ReadOnlyTable<K, &'static [u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, value) = row?;
            out.push(codec::decode(value.value())?);
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
            let entry: EntryRecord = codec::decode(value.value())?;
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

    /// Fails if an entry belongs to no stored queue.
    fn check_orphan_entries(
        txn: &ReadTransaction,
        state: &RecoveredState,
    ) -> Result<(), StoreError> {
        let recovered: usize = state.queues.iter().map(|q| q.messages.len()).sum();
        let entries = txn.open_table(QUEUE_ENTRIES)?;
        let stored = entries.len()?;
        if stored != recovered as u64 {
            return Err(StoreError::corrupt(format!(
                "{} queue entries belong to no stored queue",
                stored.saturating_sub(recovered as u64)
            )));
        }
        Ok(())
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
            let message = Arc::new(codec::decode::<MessageRecord>(value.value())?);
            self.decoded.insert(id, message.clone());
            Ok(message)
        }
    }
}
