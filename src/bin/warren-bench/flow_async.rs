//! The async face in a Warren round: each consuming thread runs a tokio current-thread
//! runtime and reads its consumer as a `Stream` (`poll_next`), acking as the blocking
//! consumer does. Publishing is the same blocking `basic_publish` as in [`flow`](crate::flow).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Barrier;
use std::time::Duration;

use futures_core::Stream;
use warrenmq::{Broker, ConsumeOptions, Consumer, Delivery};

use crate::flow::{closed, warren_round_with, Ack, Flow, Tally};

/// How long a stream consumer of a shared queue waits before looking whether the others
/// finished (as the blocking one's `recv_timeout`).
const POLL: Duration = Duration::from_millis(2);

/// Runs one Warren round whose consumers are tokio tasks reading `Consumer` as a `Stream`.
pub(crate) fn warren_async_round(flow: &Flow) -> Result<Duration, warrenmq::Error> {
    warren_round_with(flow, stream_consumer)
}

/// One consuming thread: a current-thread runtime driving one task that reads the consumer
/// as a stream until its share of the round has arrived.
fn stream_consumer(
    broker: &Broker,
    queue: &str,
    flow: &Flow,
    tally: &Tally,
    start: &Barrier,
) -> Result<(), warrenmq::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| warrenmq::Error::Internal {
            reason: format!("tokio runtime: {e}"),
        });
    let subscribed = runtime.and_then(|runtime| {
        let conn = broker.connect("/")?;
        let ch = conn.open_channel()?;
        let options = ConsumeOptions {
            no_ack: flow.ack == Ack::None,
            ..ConsumeOptions::default()
        };
        let consumer = ch.basic_consume(queue, options)?;
        Ok((runtime, conn, ch, consumer))
    });
    start.wait();
    let (runtime, _conn, ch, mut consumer) = subscribed?;
    let quota = flow.quota();
    runtime.block_on(async move {
        let mut received = 0_u64;
        let mut last_tag = None;
        loop {
            let delivery: Delivery = if let Some(quota) = quota {
                if received == quota {
                    break;
                }
                next(&mut consumer).await.ok_or_else(closed)?
            } else {
                match tokio::time::timeout(POLL, next(&mut consumer)).await {
                    Ok(Some(delivery)) => delivery,
                    Ok(None) => return Err(closed()),
                    Err(_) if tally.done() => break,
                    Err(_) => continue,
                }
            };
            received += 1;
            last_tag = Some(delivery.delivery_tag());
            match flow.ack {
                Ack::None => drop(delivery),
                Ack::Each => delivery.ack()?,
                Ack::Multiple(every) => {
                    drop(delivery);
                    if received.is_multiple_of(every) {
                        ch.basic_ack(last_tag.take().unwrap_or_default(), true)?;
                    }
                }
            }
            if quota.is_none() && tally.count() {
                break;
            }
        }
        if let (Ack::Multiple(_), Some(tag)) = (flow.ack, last_tag) {
            ch.basic_ack(tag, true)?;
        }
        Ok(())
    })
}

/// The next delivery of the stream (`StreamExt::next` without the extension crate).
async fn next(consumer: &mut Consumer) -> Option<Delivery> {
    poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}
