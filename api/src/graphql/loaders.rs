//! DataLoaders: nested fields of a page cost a constant number of statements.
//! One loader value per request, carrying that request's tenant scope.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use domain::DomainError;
use domain::calls::{self, CallColumns, CallParent};
use domain::tenancy::TenantScope;
use entity::{agent, call, call_analysis, call_event, campaign, customer};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

pub struct Loaders {
    pub db: DatabaseConnection,
    pub scope: TenantScope,
}

type LoadResult<K, V> = Result<HashMap<K, V>, Arc<DomainError>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventsOf(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CampaignId(pub Uuid);

/// A call's current analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnalysisOf(pub Uuid);

/// The newest `limit` calls of one parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecentCalls {
    pub parent: CallParent,
    pub id: Uuid,
    pub limit: u64,
    pub columns: CallColumns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallCount(pub CallParent, pub Uuid);

impl Loader<CustomerId> for Loaders {
    type Value = Arc<customer::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CustomerId]) -> LoadResult<CustomerId, Arc<customer::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = domain::customers::by_ids(&self.db, &self.scope, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|c| (CustomerId(c.id), Arc::new(c)))
            .collect())
    }
}

impl Loader<AgentId> for Loaders {
    type Value = Arc<agent::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[AgentId]) -> LoadResult<AgentId, Arc<agent::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = domain::agents::by_ids(&self.db, &self.scope, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|a| (AgentId(a.id), Arc::new(a)))
            .collect())
    }
}

impl Loader<CallId> for Loaders {
    type Value = Arc<call::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CallId]) -> LoadResult<CallId, Arc<call::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = calls::by_ids(&self.db, &self.scope, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|c| (CallId(c.id), Arc::new(c)))
            .collect())
    }
}

impl Loader<CampaignId> for Loaders {
    type Value = Arc<campaign::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CampaignId]) -> LoadResult<CampaignId, Arc<campaign::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = domain::campaigns::by_ids(&self.db, &self.scope, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|c| (CampaignId(c.id), Arc::new(c)))
            .collect())
    }
}

impl Loader<AnalysisOf> for Loaders {
    type Value = Arc<call_analysis::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[AnalysisOf]) -> LoadResult<AnalysisOf, Arc<call_analysis::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows =
            domain::analysis::service::current_for_calls(&self.db, &self.scope, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|(id, a)| (AnalysisOf(id), Arc::new(a)))
            .collect())
    }
}

impl Loader<EventsOf> for Loaders {
    type Value = Vec<call_event::Model>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[EventsOf]) -> LoadResult<EventsOf, Vec<call_event::Model>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut by_call = calls::events_by_call_ids(&self.db, &self.scope, &ids).await?;
        Ok(keys
            .iter()
            .map(|k| (*k, by_call.remove(&k.0).unwrap_or_default()))
            .collect())
    }
}

impl Loader<RecentCalls> for Loaders {
    type Value = Vec<Arc<call::Model>>;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[RecentCalls]) -> LoadResult<RecentCalls, Vec<Arc<call::Model>>> {
        let mut out = HashMap::with_capacity(keys.len());
        // One statement per parent kind and column set; keys asking for fewer rows are
        // trimmed.
        for parent in [CallParent::Customer, CallParent::Agent] {
            let mut column_sets: Vec<CallColumns> = Vec::new();
            for k in keys.iter().filter(|k| k.parent == parent) {
                if !column_sets.contains(&k.columns) {
                    column_sets.push(k.columns);
                }
            }
            for columns in column_sets {
                let wanted: Vec<&RecentCalls> = keys
                    .iter()
                    .filter(|k| k.parent == parent && k.columns == columns)
                    .collect();
                let Some(limit) = wanted.iter().map(|k| k.limit).max() else {
                    continue;
                };
                let ids: Vec<Uuid> = wanted.iter().map(|k| k.id).collect();
                let found =
                    calls::recent_by_parent(&self.db, &self.scope, parent, &ids, limit, columns)
                        .await?;
                let found: HashMap<Uuid, Vec<Arc<call::Model>>> = found
                    .into_iter()
                    .map(|(id, rows)| (id, rows.into_iter().map(Arc::new).collect()))
                    .collect();
                for k in wanted {
                    let rows = found
                        .get(&k.id)
                        .map(|r| r.iter().take(k.limit as usize).cloned().collect());
                    out.insert(*k, rows.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }
}

impl Loader<CallCount> for Loaders {
    type Value = u64;
    type Error = Arc<DomainError>;

    async fn load(&self, keys: &[CallCount]) -> LoadResult<CallCount, u64> {
        let mut out = HashMap::with_capacity(keys.len());
        for parent in [CallParent::Customer, CallParent::Agent] {
            let ids: Vec<Uuid> = keys.iter().filter(|k| k.0 == parent).map(|k| k.1).collect();
            if ids.is_empty() {
                continue;
            }
            let counts = calls::count_by_parent(&self.db, &self.scope, parent, &ids).await?;
            for id in ids {
                out.insert(CallCount(parent, id), counts.get(&id).copied().unwrap_or(0));
            }
        }
        Ok(out)
    }
}
