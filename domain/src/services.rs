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
    /// The LLM analyzer when one is configured (else analyses use the heuristic one).
    analyzer: Option<Arc<crate::analysis::llm::LlmAnalyzer>>,
    /// Outbound webhook delivery: the guarded client, secrets and settings.
    outbound: crate::outbound::Outbound,
    /// The CRM sync: its guarded client, request budgets and settings.
    crm: crate::crm::Crm,
    whatsapp: crate::whatsapp::WhatsApp,
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
        let cipher = Arc::new(
            Cipher::from_settings(settings)
                .map_err(|e| DomainError::Internal(format!("secrets key: {e}")))?,
        );
        let outbound = crate::outbound::Outbound::new(&settings.webhooks, cipher.clone())?;
        let crm = crate::crm::Crm::new(settings, cipher.clone())?;
        let whatsapp = crate::whatsapp::WhatsApp::new(settings, cipher.clone())?;
        let mut providers =
            Registry::with_retry(db.clone(), cipher, settings.providers.clone(), retry)?;
        if let Some(url) = &settings.redis_url {
            providers = providers.with_shared_budgets(url.expose())?;
        }
        let analyzer = llm_analyzer(settings)?;
        let llm = analyzer.is_some();
        Ok(Services {
            analyzer,
            outbound,
            crm,
            whatsapp,
            ingestor: Ingestor::new(
                db.clone(),
                events.clone(),
                FollowUps::default()
                    .with(Arc::new(crate::campaigns::jobs::CampaignFollowUp))
                    .with(Arc::new(crate::analysis::jobs::AnalysisFollowUp::new(llm))),
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
            .with(Arc::new(crate::analysis::jobs::AnalysisFollowUp::new(
                self.analyzer.is_some(),
            )));
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
    pub fn analyzer(&self) -> Option<&Arc<crate::analysis::llm::LlmAnalyzer>> {
        self.analyzer.as_ref()
    }
    pub fn outbound(&self) -> &crate::outbound::Outbound {
        &self.outbound
    }
    pub fn crm(&self) -> &crate::crm::Crm {
        &self.crm
    }
    pub fn whatsapp(&self) -> &crate::whatsapp::WhatsApp {
        &self.whatsapp
    }
}

/// The LLM analyzer `LLM_BASE_URL` asks for, its budget and concurrency shared through
/// Redis when there is one.
fn llm_analyzer(
    settings: &Settings,
) -> DomainResult<Option<Arc<crate::analysis::llm::LlmAnalyzer>>> {
    use crate::analysis::llm::{LlmAnalyzer, LlmConfig};
    let Some(llm) = &settings.llm else {
        return Ok(None);
    };
    let config = LlmConfig {
        base_url: llm.base_url.clone(),
        api_key: llm.api_key.as_ref().map(|k| k.expose().to_owned()),
        model: llm.model.clone(),
        concurrency: llm.concurrency,
        requests_per_minute: llm.requests_per_minute,
        timeout: std::time::Duration::from_secs(llm.timeout_seconds),
        max_tokens: llm.max_tokens,
    };
    let redis = match &settings.redis_url {
        Some(url) => Some(
            redis::Client::open(url.expose())
                .and_then(crate::events::redis_connection)
                .map_err(|e| DomainError::Internal(format!("LLM request limits: {e}")))?,
        ),
        None => None,
    };
    let (budget, slots) = config.limits(redis);
    let analyzer = LlmAnalyzer::new(config, budget, slots)
        .map_err(|e| DomainError::Internal(format!("LLM analyzer: {e}")))?;
    Ok(Some(Arc::new(analyzer)))
}
