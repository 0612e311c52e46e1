//! The async face in a Warren round: each consuming thread runs a tokio current-thread
//! runtime and reads its consumer as a `Stream` (`poll_next`), acking as the blocking
//! consumer does. Publishing is the same blocking `basic_publish` as in [`flow`](crate::flow).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Barrier;
use std::time::Duration;

use futures_core::Stream;
use warrenmq::{Broker, Consumer, Delivery};

use crate::flow::{closed, subscribe, warren_round_with, Flow, Settler, Tally};

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
    let subscribed = runtime.and_then(|runtime| Ok((runtime, subscribe(broker, queue, flow)?)));
    start.wait();
    let (runtime, (_conn, ch, mut consumer)) = subscribed?;
    let quota = flow.quota();
    runtime.block_on(async move {
        let mut settler = Settler::new(&ch, flow.ack);
        loop {
            let delivery: Delivery = if let Some(quota) = quota {
                if settler.received() == quota {
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
            settler.settle(delivery)?;
            if quota.is_none() && tally.count() {
                break;
            }
        }
        settler.finish()
    })
}

/// The next delivery of the stream (`StreamExt::next` without the extension crate).
async fn next(consumer: &mut Consumer) -> Option<Delivery> {
    poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}
