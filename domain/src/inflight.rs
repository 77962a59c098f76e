//! Per-tenant limits on expensive requests running at once in this process (an audit, an
//! analytics query over a large period), so one tenant cannot hold the database for others.

use std::collections::BTreeMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::error::{DomainError, DomainResult};

/// At most `limit` requests of one kind per tenant at once; more are refused (CONFLICT).
pub(crate) struct PerTenant {
    limit: usize,
    /// What the requests are, for the refusal ("an audit").
    what: &'static str,
    running: Mutex<BTreeMap<Uuid, usize>>,
}

impl PerTenant {
    pub(crate) const fn new(limit: usize, what: &'static str) -> Self {
        PerTenant {
            limit,
            what,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// A place for one more request of `tenant_id`, held until the guard drops.
    pub(crate) fn take(&'static self, tenant_id: Uuid) -> DomainResult<Running> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| DomainError::Internal("request registry poisoned".into()))?;
        let n = running.entry(tenant_id).or_insert(0);
        if *n >= self.limit {
            return Err(DomainError::Conflict {
                field: None,
                message: format!(
                    "{} of this tenant {} already running; try again when {} ends",
                    self.what,
                    if self.limit == 1 { "is" } else { "are" },
                    if self.limit == 1 { "it" } else { "one" },
                ),
            });
        }
        *n += 1;
        Ok(Running {
            of: self,
            tenant_id,
        })
    }
}

pub(crate) struct Running {
    of: &'static PerTenant,
    tenant_id: Uuid,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.of.running.lock()
            && let Some(n) = running.get_mut(&self.tenant_id)
        {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.tenant_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TWO: PerTenant = PerTenant::new(2, "two queries");

    #[test]
    fn a_tenant_gets_its_places_and_others_theirs() {
        let t = Uuid::now_v7();
        let a = TWO.take(t).unwrap();
        let _b = TWO.take(t).unwrap();
        assert!(TWO.take(t).is_err());
        assert!(TWO.take(Uuid::now_v7()).is_ok());
        drop(a);
        assert!(TWO.take(t).is_ok());
    }
}
