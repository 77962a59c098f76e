//! Tenants, API keys and the [`TenantScope`] every repository query is filtered by.
//!
//! A `TenantScope` can only be obtained by authenticating a key, so holding one proves
//! which tenant the caller belongs to and what role it has.

use chrono::Utc;
use entity::{api_key, tenant};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::phone::Region;
use crate::types::Role;

const KEY_PREFIX: &str = "sb_";

/// Who is calling, within which tenant. Built only by [`authenticate`].
#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant_id: Uuid,
    api_key_id: Uuid,
    role: Role,
    region: Region,
    /// The tenant row as read when the key was resolved.
    tenant: std::sync::Arc<tenant::Model>,
}

impl TenantScope {
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
    pub fn api_key_id(&self) -> Uuid {
        self.api_key_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// The tenant's default region, used to read national-format phone numbers.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The tenant as of authentication (at most `AUTH_CACHE_SECONDS` old).
    pub fn tenant(&self) -> &tenant::Model {
        &self.tenant
    }

    /// Fails with `Forbidden` unless the key's role is at least `needed`.
    pub fn require(&self, needed: Role) -> DomainResult<()> {
        let rank = |r: Role| match r {
            Role::Viewer => 0,
            Role::Member => 1,
            Role::Admin => 2,
        };
        if rank(self.role) >= rank(needed) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "this API key has role {}; {} is required",
                self.role, needed
            )))
        }
    }

    /// For trusted internal callers (workers, seeding) acting on a tenant's behalf.
    pub fn system(tenant: &tenant::Model) -> DomainResult<Self> {
        Ok(TenantScope {
            tenant_id: tenant.id,
            api_key_id: Uuid::nil(),
            role: Role::Admin,
            region: Region::parse(&tenant.default_region)
                .map_err(|e| DomainError::Internal(format!("tenant region: {e}")))?,
            tenant: std::sync::Arc::new(tenant.clone()),
        })
    }
}

/// Random bytes as lowercase hex, for keys and webhook tokens.
pub fn random_token(bytes: usize) -> DomainResult<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| DomainError::Internal(format!("random source: {e}")))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Keys are stored only as their SHA-256; a 256-bit random key needs no slow hash.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Compares two secrets without leaking where they differ (both sides are hashed first).
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Resolves a bearer API key to its tenant scope. Unknown or revoked keys are `Unauthenticated`.
pub async fn authenticate(db: &DatabaseConnection, key: &str) -> DomainResult<TenantScope> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Err(DomainError::Unauthenticated);
    }
    let found = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(key)))
        .filter(api_key::Column::RevokedAt.is_null())
        .find_also_related(tenant::Entity)
        .one(db)
        .await?;
    let Some((key, Some(tenant))) = found else {
        return Err(DomainError::Unauthenticated);
    };
    let role = key.role;
    let mut scope = TenantScope::system(&tenant)?;
    scope.api_key_id = key.id;
    scope.role = role;
    Ok(scope)
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub default_region: String,
    pub timezone: String,
    pub concurrency_limit: i32,
}

/// A freshly made key; `key` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub id: Uuid,
    pub key: String,
    pub role: Role,
}

fn validate_name(field: &'static str, name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(DomainError::invalid(
            field,
            "must be at most 200 characters",
        ));
    }
    Ok(name.to_owned())
}

/// IANA-style zone names (`Asia/Kolkata`, `UTC`); full zone data is not bundled.
fn validate_timezone(tz: &str) -> DomainResult<String> {
    let tz = tz.trim();
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        && tz.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if ok {
        Ok(tz.to_owned())
    } else {
        Err(DomainError::invalid(
            "timezone",
            "must be an IANA time zone such as UTC or Asia/Kolkata",
        ))
    }
}

/// Creates a tenant and its first ADMIN key in one transaction.
pub async fn create_tenant(
    db: &DatabaseConnection,
    input: NewTenant,
) -> DomainResult<(tenant::Model, IssuedKey)> {
    let name = validate_name("name", &input.name)?;
    let region = Region::parse(&input.default_region)
        .map_err(|e| DomainError::invalid("defaultRegion", e.to_string()))?;
    let timezone = validate_timezone(&input.timezone)?;
    if !(1..=10_000).contains(&input.concurrency_limit) {
        return Err(DomainError::invalid(
            "concurrencyLimit",
            "must be between 1 and 10000",
        ));
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let tenant = tenant::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        default_region: Set(region.code().to_owned()),
        timezone: Set(timezone),
        concurrency_limit: Set(input.concurrency_limit),
        webhook_token: Set(random_token(24)?),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let key = insert_key(&txn, tenant.id, "default admin key", Role::Admin).await?;
    txn.commit().await?;
    Ok((tenant, key))
}

async fn insert_key<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    name: &str,
    role: Role,
) -> DomainResult<IssuedKey> {
    let secret = format!("{KEY_PREFIX}{}", random_token(32)?);
    let model = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        name: Set(name.to_owned()),
        role: Set(role),
        key_hash: Set(hash_key(&secret)),
        key_prefix: Set(secret[..KEY_PREFIX.len() + 8].to_owned()),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(IssuedKey {
        id: model.id,
        key: secret,
        role,
    })
}

/// ADMIN only: issues another key for the caller's tenant.
pub async fn create_api_key(
    db: &DatabaseConnection,
    scope: &TenantScope,
    name: &str,
    role: Role,
) -> DomainResult<IssuedKey> {
    scope.require(Role::Admin)?;
    let name = validate_name("name", name)?;
    insert_key(db, scope.tenant_id(), &name, role).await
}

/// ADMIN only: revokes one of the tenant's keys. Another tenant's key id is `NotFound`.
pub async fn revoke_api_key(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<bool> {
    scope.require(Role::Admin)?;
    let key = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?
        .ok_or(DomainError::not_found("API key"))?;
    if key.revoked_at.is_some() {
        return Ok(true);
    }
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    active.update(db).await?;
    Ok(true)
}

/// ADMIN only: a new provider webhook token for the caller's tenant; the old one stops
/// working (at once where the token cache is cleared, within its TTL elsewhere).
pub async fn rotate_webhook_token(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<String> {
    scope.require(Role::Admin)?;
    let token = random_token(24)?;
    let updated = tenant::Entity::update_many()
        .col_expr(
            tenant::Column::WebhookToken,
            sea_orm::sea_query::Expr::value(token.clone()),
        )
        .col_expr(
            tenant::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(tenant::Column::Id.eq(scope.tenant_id()))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(DomainError::not_found("tenant"));
    }
    Ok(token)
}

pub async fn list_api_keys(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<Vec<api_key::Model>> {
    scope.require(Role::Admin)?;
    Ok(api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(scope.tenant_id()))
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?)
}

pub async fn count_tenants(db: &DatabaseConnection) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(tenant::Entity::find().count(db).await?)
}

/// Resolves keys with a short-lived in-process cache, so a burst of requests costs one
/// lookup. Revocation takes effect at once in this process (`forget_all`) and within
/// `ttl` in other replicas; a zero `ttl` disables caching.
pub struct Authenticator {
    ttl: std::time::Duration,
    cache: std::sync::Mutex<std::collections::HashMap<String, (TenantScope, std::time::Instant)>>,
}

impl Authenticator {
    const MAX_ENTRIES: usize = 10_000;

    pub fn new(ttl: std::time::Duration) -> Self {
        Authenticator {
            ttl,
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        key: &str,
    ) -> DomainResult<TenantScope> {
        if self.ttl.is_zero() {
            return authenticate(db, key).await;
        }
        let hashed = hash_key(key);
        if let Ok(cache) = self.cache.lock()
            && let Some((scope, at)) = cache.get(&hashed)
            && at.elapsed() < self.ttl
        {
            return Ok(scope.clone());
        }
        let scope = authenticate(db, key).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= Self::MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(hashed, (scope.clone(), std::time::Instant::now()));
        }
        Ok(scope)
    }

    /// The scope of `key` if it was resolved within the cache's lifetime (no lookup).
    pub fn cached(&self, key: &str) -> Option<TenantScope> {
        if self.ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().ok()?;
        let (scope, at) = cache.get(&hash_key(key))?;
        (at.elapsed() < self.ttl).then(|| scope.clone())
    }

    pub fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("", "abc"));
        assert!(!secrets_match("abd", "abc"));
    }

    #[test]
    fn timezones() {
        assert!(validate_timezone("Asia/Kolkata").is_ok());
        assert!(validate_timezone("UTC").is_ok());
        assert!(validate_timezone("not a zone").is_err());
        assert!(validate_timezone("").is_err());
    }
}
