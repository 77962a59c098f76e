//! Readiness probes for the database and, when configured, Redis.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::settings::Secret;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub database: bool,
    /// `None` when Redis is not configured.
    pub redis: Option<bool>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database && self.redis.unwrap_or(true)
    }
}

/// Checks Redis with a PING on a short-lived connection (not a hot path).
#[derive(Clone)]
pub struct RedisProbe {
    client: redis::Client,
}

impl RedisProbe {
    pub fn new(url: &Secret) -> Result<Self, redis::RedisError> {
        Ok(RedisProbe {
            client: redis::Client::open(url.expose())?,
        })
    }

    pub async fn ping(&self) -> bool {
        let check = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), check).await,
            Ok(Ok(_))
        )
    }
}

pub async fn check(db: &DatabaseConnection, redis: Option<&RedisProbe>) -> Readiness {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), crate::db::ping(db)).await,
        Ok(Ok(()))
    );
    let redis = match redis {
        Some(probe) => Some(probe.ping().await),
        None => None,
    };
    Readiness { database, redis }
}
