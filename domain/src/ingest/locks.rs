//! Per-call locks inside one process: reports about the same call are applied one after
//! another, so their events leave in commit order. A batch holds the locks of all its
//! calls at once; unrelated calls never wait for each other.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Default)]
pub(crate) struct CallLocks {
    held: std::sync::Mutex<HashSet<u64>>,
    released: Notify,
}

/// Holds its keys until dropped.
pub(crate) struct Held<'a> {
    locks: &'a CallLocks,
    keys: Vec<u64>,
}

pub(crate) fn key(tenant_id: Uuid, provider: &str, execution_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tenant_id.hash(&mut h);
    provider.hash(&mut h);
    execution_id.hash(&mut h);
    h.finish()
}

impl CallLocks {
    /// Waits until none of `keys` is held, then holds them all (all or nothing, so two
    /// batches can never deadlock on each other).
    pub(crate) async fn lock(&self, mut keys: Vec<u64>) -> Held<'_> {
        keys.sort_unstable();
        keys.dedup();
        loop {
            // Registered before looking, so a release in between is not missed.
            let mut released = std::pin::pin!(self.released.notified());
            released.as_mut().enable();
            {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                if keys.iter().all(|k| !held.contains(k)) {
                    held.extend(keys.iter().copied());
                    return Held { locks: self, keys };
                }
            }
            released.await;
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            held.remove(k);
        }
        drop(held);
        self.locks.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn overlapping_sets_wait_and_disjoint_sets_do_not() {
        let locks = Arc::new(CallLocks::default());
        let first = locks.lock(vec![1, 2, 3]).await;
        // Disjoint: immediate.
        let other = tokio::time::timeout(Duration::from_millis(100), locks.lock(vec![4, 5])).await;
        assert!(other.is_ok());
        drop(other);
        // Overlapping: waits until the first set is released.
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _held = locks.lock(vec![3, 9]).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released")
            .expect("joined");
        assert!(locks.held.lock().unwrap().is_empty());
    }
}
