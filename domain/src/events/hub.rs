//! The per-tenant fan-out of this process's events.

use std::sync::Arc;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{Event, EventBus};

/// How many events one tenant's subscriber may fall behind before it is dropped.
pub const TENANT_BUFFER: usize = 256;

/// Fans the process's events out per tenant, so an event costs work for that tenant's
/// subscribers only, never for everyone connected to the process.
pub struct Hub {
    tenants: std::sync::Mutex<std::collections::HashMap<Uuid, broadcast::Sender<Arc<Event>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hub {
    /// Starts the one task that reads the bus and routes by tenant. Other processes'
    /// events of tenants with no subscriber here are not even decoded.
    pub fn start(bus: &Arc<dyn EventBus>) -> Arc<Hub> {
        let mut rx = bus.subscribe();
        let hub = Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => match weak.upgrade() {
                            Some(hub) => hub.dispatch(event),
                            None => break,
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            metrics::counter!("events_dropped_total", "where" => "hub")
                                .increment(n);
                            tracing::warn!(missed = n, "event hub fell behind the bus");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            Hub {
                tenants: std::sync::Mutex::new(std::collections::HashMap::new()),
                task,
            }
        });
        let weak = Arc::downgrade(&hub);
        bus.only_tenants(Arc::new(move |tenant| {
            weak.upgrade().is_none_or(|hub| hub.wants(tenant))
        }));
        hub
    }

    /// Whether a subscriber of `tenant` may be listening here (a channel whose receivers
    /// all left is forgotten at its next event).
    fn wants(&self, tenant: Uuid) -> bool {
        self.tenants
            .lock()
            .map(|t| t.contains_key(&tenant))
            .unwrap_or(true)
    }

    fn dispatch(&self, event: Arc<Event>) {
        let tenant = event.tenant_id();
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        if let Some(tx) = tenants.get(&tenant)
            && tx.send(event).is_err()
        {
            // Nobody of this tenant is listening any more.
            tenants.remove(&tenant);
        }
    }

    /// Events of one tenant, from now on.
    pub fn subscribe(&self, tenant: Uuid) -> broadcast::Receiver<Arc<Event>> {
        match self.tenants.lock() {
            Ok(mut tenants) => tenants
                .entry(tenant)
                .or_insert_with(|| broadcast::channel(TENANT_BUFFER).0)
                .subscribe(),
            // A poisoned map only happens after a panic elsewhere: hand out a closed stream.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Tenants with a channel open (for metrics and tests).
    pub fn tenant_count(&self) -> usize {
        self.tenants.lock().map(|t| t.len()).unwrap_or(0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
