//! What the API and the workers share at run time: the database, the event bus, the
//! ingestor and the provider registry, built once from settings.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::calls::transition::FollowUps;
use crate::error::{DomainError, DomainResult};
use crate::events::{self, EventBus};
use crate::http::RetryPolicy;
use crate::ingest::Ingestor;
use crate::providers::Registry;
use crate::secrets::Cipher;
use crate::settings::Settings;

#[derive(Clone)]
pub struct Services {
    db: DatabaseConnection,
    events: Arc<dyn EventBus>,
    ingestor: Ingestor,
    providers: Registry,
}

impl Services {
    /// Connects the event bus (Redis when configured) and loads the secrets key.
    pub fn start(db: DatabaseConnection, settings: &Settings) -> DomainResult<Self> {
        let events = events::from_settings(settings)
            .map_err(|e| DomainError::Internal(format!("event bus: {e}")))?;
        Self::with_parts(db, settings, events, RetryPolicy::default())
    }

    pub fn with_parts(
        db: DatabaseConnection,
        settings: &Settings,
        events: Arc<dyn EventBus>,
        retry: RetryPolicy,
    ) -> DomainResult<Self> {
        let cipher = Cipher::from_settings(settings)
            .map_err(|e| DomainError::Internal(format!("secrets key: {e}")))?;
        let mut providers = Registry::with_retry(
            db.clone(),
            Arc::new(cipher),
            settings.providers.clone(),
            retry,
        )?;
        if let Some(url) = &settings.redis_url {
            providers = providers.with_shared_budgets(url.expose())?;
        }
        Ok(Services {
            ingestor: Ingestor::new(
                db.clone(),
                events.clone(),
                FollowUps::default()
                    .with(Arc::new(crate::campaigns::jobs::CampaignFollowUp))
                    .with(Arc::new(crate::analysis::jobs::AnalysisFollowUp)),
            ),
            db,
            events,
            providers,
        })
    }

    /// Adds follow-ups every call transition runs (the product's own are built in).
    pub fn with_follow_ups(mut self, follow_ups: FollowUps) -> Self {
        let follow_ups = follow_ups
            .with(Arc::new(crate::campaigns::jobs::CampaignFollowUp))
            .with(Arc::new(crate::analysis::jobs::AnalysisFollowUp));
        self.ingestor = Ingestor::new(self.db.clone(), self.events.clone(), follow_ups);
        self
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }
    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.events
    }
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }
    pub fn providers(&self) -> &Registry {
        &self.providers
    }
}
