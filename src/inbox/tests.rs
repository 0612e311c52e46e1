use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use super::{Inbox, Signal, Slot};

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (Arc::clone(&counter), Waker::from(counter))
}

fn wakes(counter: &Counter) -> usize {
    counter.0.load(Ordering::SeqCst)
}

fn poll(inbox: &Inbox<u32>, waker: &Waker, slot: &mut Slot) -> Poll<Option<u32>> {
    inbox.poll_pop(&mut Context::from_waker(waker), slot)
}

#[test]
fn items_come_out_in_order_then_disconnected_after_close() {
    let inbox = Inbox::default();
    assert_eq!(inbox.try_pop(), Err(false));
    for i in 0..3 {
        inbox.push(i).unwrap();
    }
    assert_eq!(inbox.len(), 3);
    assert_eq!(inbox.try_pop(), Ok(0));
    inbox.close();
    assert_eq!(inbox.push(9), Err(9), "a closed inbox takes nothing");
    assert_eq!(inbox.pop_deadline(None), Ok(1));
    assert_eq!(inbox.try_pop(), Ok(2));
    assert_eq!(inbox.try_pop(), Err(true));
    assert_eq!(inbox.pop_deadline(None), Err(true));
}

#[test]
fn close_and_drain_takes_back_what_is_left() {
    let inbox = Inbox::default();
    inbox.push(1).unwrap();
    inbox.push(2).unwrap();
    assert_eq!(inbox.close_and_drain(), vec![1, 2]);
    assert!(inbox.is_empty());
    assert_eq!(inbox.try_pop(), Err(true));
}

#[test]
fn a_pending_task_is_woken_once_per_arrival_and_keeps_one_registration() {
    let inbox = Inbox::default();
    let (count, waker) = counter();
    let mut slot = None;
    for _ in 0..5 {
        assert_eq!(poll(&inbox, &waker, &mut slot), Poll::Pending);
    }
    assert_eq!(inbox.waiting_tasks(), 1, "re-polling does not pile up");
    inbox.push(7).unwrap();
    assert_eq!(wakes(&count), 1);
    assert_eq!(poll(&inbox, &waker, &mut slot), Poll::Ready(Some(7)));
    assert_eq!(inbox.waiting_tasks(), 0);
}

#[test]
fn a_dropped_woken_waiter_passes_the_wake_on() {
    let inbox = Inbox::default();
    let (first, first_waker) = counter();
    let (second, second_waker) = counter();
    let (mut a, mut b) = (None, None);
    assert_eq!(poll(&inbox, &first_waker, &mut a), Poll::Pending);
    assert_eq!(poll(&inbox, &second_waker, &mut b), Poll::Pending);
    inbox.push(1).unwrap();
    assert_eq!(
        (wakes(&first), wakes(&second)),
        (1, 0),
        "one arrival wakes one task"
    );
    // The first task is cancelled before it takes the item: the second must hear of it.
    inbox.unregister(&mut a);
    assert_eq!(wakes(&second), 1);
    assert_eq!(poll(&inbox, &second_waker, &mut b), Poll::Ready(Some(1)));
    // A waiter withdrawn before any wake wakes nobody.
    let (third, third_waker) = counter();
    let mut c = None;
    assert_eq!(poll(&inbox, &third_waker, &mut c), Poll::Pending);
    inbox.unregister(&mut c);
    inbox.push(2).unwrap();
    assert_eq!(wakes(&third), 0);
    assert_eq!(inbox.waiting_tasks(), 0);
}

#[test]
fn close_wakes_every_task_and_thread() {
    let inbox = Arc::new(Inbox::<u32>::default());
    let (count, waker) = counter();
    let (mut a, mut b) = (None, None);
    assert_eq!(poll(&inbox, &waker, &mut a), Poll::Pending);
    assert_eq!(poll(&inbox, &waker, &mut b), Poll::Pending);
    let sleeper = {
        let inbox = Arc::clone(&inbox);
        thread::spawn(move || inbox.pop_deadline(None))
    };
    while inbox.state.lock().sleepers == 0 {
        thread::yield_now();
    }
    inbox.close();
    assert_eq!(sleeper.join().unwrap(), Err(true));
    assert_eq!(wakes(&count), 2);
    assert_eq!(poll(&inbox, &waker, &mut a), Poll::Ready(None));
}

#[test]
fn a_blocked_thread_wakes_on_arrival_and_times_out_without_one() {
    let inbox = Arc::new(Inbox::default());
    let soon = Instant::now() + Duration::from_millis(20);
    assert_eq!(inbox.pop_deadline(Some(soon)), Err(false));
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let inbox = Arc::clone(&inbox);
            thread::spawn(move || inbox.pop_deadline(None).unwrap())
        })
        .collect();
    for i in 0..4 {
        inbox.push(i).unwrap();
    }
    let mut got: Vec<u32> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3]);
}

#[test]
fn a_signal_hears_of_arrivals_and_of_the_close() {
    let signal = Arc::new(Signal::default());
    let inbox = Inbox::with_signal(Arc::clone(&signal));
    let seen = signal.generation();
    inbox.push(1).unwrap();
    assert!(signal.wait_past(seen, Some(Instant::now())));
    let seen = signal.generation();
    assert!(!signal.wait_past(seen, Some(Instant::now() + Duration::from_millis(5))));
    inbox.close();
    assert!(signal.wait_past(seen, None));
}
