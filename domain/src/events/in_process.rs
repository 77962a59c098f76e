//! The embedded default bus: one process, one broadcast channel.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Event, EventBus, PublishFuture, SUBSCRIBER_BUFFER};

/// The embedded default: one process, one broadcast channel.
pub struct InProcessBus {
    local: broadcast::Sender<Arc<Event>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        InProcessBus {
            local: broadcast::channel(SUBSCRIBER_BUFFER).0,
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) -> PublishFuture<'_> {
        // No receivers is not an error: nobody is watching.
        let _ = self.local.send(Arc::new(event));
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    fn is_connected(&self) -> bool {
        true
    }
}
