//! The bounded queue in front of every output, with its overflow policy and counters.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What happens when an output's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// The hub waits for room: nothing is lost, but a stuck output stalls every output.
    /// Only for outputs that cannot stall for long (the local event log).
    Block,
    /// The oldest waiting item is dropped and counted: the output catches up with the present.
    DropOldest,
    /// The new item is dropped and counted.
    DropNewest,
}

/// Counters an output's queue keeps; read by `/api/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct QueueCounters {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    pub policy: OverflowPolicy,
    pub capacity: usize,
    pub depth: usize,
    pub enqueued: u64,
    pub delivered: u64,
    pub dropped: u64,
}

pub struct BoundedQueue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    policy: OverflowPolicy,
    closed: AtomicBool,
    item_ready: Notify,
    room_ready: Notify,
    /// Someone waits in [`Self::delivered_beyond`]: `mark_delivered` wakes it.
    delivered_watched: AtomicBool,
    delivered_ready: Notify,
    /// The consumer stopped for good ([`Self::abandon`]).
    abandoned: AtomicBool,
    pub counters: QueueCounters,
}

impl<T> BoundedQueue<T> {
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            policy,
            closed: AtomicBool::new(false),
            item_ready: Notify::new(),
            room_ready: Notify::new(),
            delivered_watched: AtomicBool::new(false),
            delivered_ready: Notify::new(),
            abandoned: AtomicBool::new(false),
            counters: QueueCounters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        // A panic while holding this lock cannot leave the deque inconsistent, so keep going.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item according to the policy. Returns false if the item was dropped.
    pub async fn push(&self, item: T) -> bool {
        let mut item = Some(item);
        loop {
            let room = self.room_ready.notified();
            {
                let mut items = self.lock();
                if items.len() < self.capacity {
                    if let Some(item) = item.take() {
                        items.push_back(item);
                    }
                    drop(items);
                    self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                    self.item_ready.notify_one();
                    return true;
                }
                match self.policy {
                    OverflowPolicy::DropNewest => {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                    OverflowPolicy::DropOldest => {
                        items.pop_front();
                        if let Some(item) = item.take() {
                            items.push_back(item);
                        }
                        drop(items);
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                        self.item_ready.notify_one();
                        return true;
                    }
                    OverflowPolicy::Block => {}
                }
            }
            if self.closed.load(Ordering::Acquire) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            room.await;
        }
    }

    /// Waits for the next item; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let ready = self.item_ready.notified();
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.closed.load(Ordering::Acquire) {
                return self.try_pop();
            }
            ready.await;
        }
    }

    /// Takes up to `max` waiting items without waiting.
    pub fn drain_up_to(&self, max: usize, into: &mut Vec<T>) {
        let mut items = self.lock();
        let n = items.len().min(max);
        into.extend(items.drain(..n));
        drop(items);
        if n > 0 {
            self.room_ready.notify_waiters();
        }
    }

    pub fn try_pop(&self) -> Option<T> {
        let item = self.lock().pop_front();
        if item.is_some() {
            self.room_ready.notify_waiters();
        }
        item
    }

    /// Marks one item handed over by the output, for the delivered counter.
    pub fn mark_delivered(&self, n: u64) {
        self.counters.delivered.fetch_add(n, Ordering::SeqCst);
        if self.delivered_watched.load(Ordering::SeqCst) {
            self.delivered_ready.notify_waiters();
        }
    }

    /// Waits until more than `n` items were marked delivered, or the consumer abandoned the
    /// queue; returns the delivered count.
    pub async fn delivered_beyond(&self, n: u64) -> u64 {
        self.delivered_watched.store(true, Ordering::SeqCst);
        loop {
            let ready = self.delivered_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let delivered = self.counters.delivered.load(Ordering::SeqCst);
            if delivered > n || self.is_abandoned() {
                return delivered;
            }
            ready.await;
        }
    }

    /// The consumer stopped for good (its disk failed): the queue is closed, and whoever
    /// waits for its deliveries stops waiting.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.close();
        self.delivered_ready.notify_waiters();
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// No more pushes; `pop` returns what is left, then `None`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.item_ready.notify_waiters();
        self.room_ready.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            policy: self.policy,
            capacity: self.capacity,
            depth: self.len(),
            enqueued: self.counters.enqueued.load(Ordering::Relaxed),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts() {
        let q = BoundedQueue::new(2, OverflowPolicy::DropOldest);
        for i in 0..5 {
            assert!(q.push(i).await);
        }
        assert_eq!(q.try_pop(), Some(3));
        assert_eq!(q.try_pop(), Some(4));
        assert_eq!(q.stats().dropped, 3);
    }

    #[tokio::test]
    async fn drop_newest_refuses_and_counts() {
        let q = BoundedQueue::new(1, OverflowPolicy::DropNewest);
        assert!(q.push(1).await);
        assert!(!q.push(2).await);
        assert_eq!(q.try_pop(), Some(1));
        assert_eq!(q.stats().dropped, 1);
    }

    #[tokio::test]
    async fn block_waits_for_room_and_loses_nothing() {
        let q = Arc::new(BoundedQueue::new(1, OverflowPolicy::Block));
        let producer = {
            let q = q.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    q.push(i).await;
                }
                q.close();
            })
        };
        let mut got = Vec::new();
        while let Some(i) = q.pop().await {
            got.push(i);
        }
        producer.await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(q.stats().dropped, 0);
    }
}
