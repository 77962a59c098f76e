//! The tenant's CRM connection (ADMIN): connect, change the mapping, read, disconnect.
//! The API key and webhook secret are stored encrypted and never read back through the
//! API; the webhook URL carries a random token that disconnecting revokes at once.

use chrono::{DateTime, Utc};
use entity::crm_connection;
use entity::values::{CrmDirection, CrmProvider, SyncTrigger};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Crm;
use super::fields::{FieldMapping, Overrides};
use super::twenty::Account;
use crate::error::{DomainError, DomainResult};
use crate::http::{Auth, HttpError};
use crate::tenancy::TenantScope;
use crate::types::Role;

pub struct ConnectTwenty {
    pub base_url: String,
    pub api_key: String,
    pub webhook_secret: String,
    pub field_mapping: Option<FieldMapping>,
    pub overrides: Option<Overrides>,
}

pub struct UpdateCrm {
    pub field_mapping: Option<FieldMapping>,
    pub overrides: Option<Overrides>,
}

/// A connection as the API shows it: never the key or the secret.
#[derive(Debug, Clone)]
pub struct CrmConnection {
    pub provider: CrmProvider,
    pub base_url: String,
    pub webhook_url: String,
    pub field_mapping: FieldMapping,
    pub overrides: Overrides,
    pub pull_cursor: Option<DateTime<Utc>>,
    pub last_pull_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub linked_customers: u64,
    pub pending_pushes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn key_context(tenant: Uuid) -> String {
    format!("crm/{tenant}/api_key")
}

fn secret_context(tenant: Uuid) -> String {
    format!("crm/{tenant}/webhook_secret")
}

fn printable(field: &'static str, v: &str, max: usize) -> DomainResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Connects (or reconnects) the tenant's Twenty workspace after one read proves the key,
/// and starts a first sync. Reconnecting to another workspace forgets the old links.
pub async fn connect(
    db: &DatabaseConnection,
    crm: &Crm,
    scope: &TenantScope,
    input: ConnectTwenty,
) -> DomainResult<CrmConnection> {
    scope.require(Role::Admin)?;
    let tenant = scope.tenant_id();
    let base_url = input.base_url.trim().trim_end_matches('/').to_owned();
    let parsed = url::Url::parse(&base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    match parsed {
        Some(u)
            if base_url.len() <= 500
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() => {}
        _ => {
            return Err(DomainError::invalid(
                "baseUrl",
                "must be the workspace's http(s) address without credentials, query or fragment, up to 500 characters (https://api.twenty.com or your own domain)",
            ));
        }
    }
    crm.policy()
        .check(&base_url)
        .await
        .map_err(|e| DomainError::invalid("baseUrl", e.to_string()))?;
    let api_key = printable("apiKey", &input.api_key, 4000)?;
    let secret = printable("webhookSecret", &input.webhook_secret, 500)?;
    let mapping = input.field_mapping.unwrap_or_default().validated()?;
    let overrides = input.overrides.unwrap_or_default().validated()?;

    let account = Account {
        base_url: base_url.clone(),
        auth: Auth::Bearer(api_key.clone()),
        http: crm.http().clone(),
        budget: None,
    };
    match account.probe().await {
        Ok(()) => {}
        Err(HttpError::Credentials { status, message }) => {
            return Err(DomainError::invalid(
                "apiKey",
                format!("Twenty refused the key (HTTP {status}): {message}"),
            ));
        }
        Err(e) => {
            return Err(DomainError::invalid(
                "baseUrl",
                format!("could not read people from Twenty there: {e}"),
            ));
        }
    }
    let cipher = crm.cipher();
    let key_enc = cipher
        .encrypt(&api_key, &key_context(tenant))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let secret_enc = cipher
        .encrypt(&secret, &secret_context(tenant))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let existing = crm_connection::Entity::find_by_id(tenant).one(&txn).await?;
    let new_connection = existing.is_none();
    let model = match existing {
        Some(old) => {
            // Another workspace (Twenty Cloud's share one URL, so a new key may name one):
            // its people are not the old links' people.
            let old_key = cipher.decrypt(&old.api_key_enc, &key_context(tenant)).ok();
            let moved = old.base_url != base_url || old_key.as_deref() != Some(api_key.as_str());
            if moved {
                forget_links(&txn, tenant).await?;
                queue_everyone(&txn, tenant).await?;
            }
            let mut a = old.into_active_model();
            a.base_url = Set(base_url);
            a.api_key_enc = Set(key_enc);
            a.webhook_secret_enc = Set(secret_enc);
            a.field_mapping = Set(serde_json::to_value(&mapping).unwrap_or_default());
            a.overrides = Set(overrides.to_json());
            if moved {
                a.pull_cursor = Set(None);
            }
            a.failing_since = Set(None);
            a.failing_notified = Set(false);
            a.last_error = Set(None);
            a.updated_at = Set(now);
            a.update(&txn).await?
        }
        None => {
            crm_connection::ActiveModel {
                tenant_id: Set(tenant),
                provider: Set(CrmProvider::Twenty),
                base_url: Set(base_url),
                api_key_enc: Set(key_enc),
                webhook_secret_enc: Set(secret_enc),
                webhook_token: Set(crate::tenancy::random_token(24)?),
                field_mapping: Set(serde_json::to_value(&mapping).unwrap_or_default()),
                overrides: Set(overrides.to_json()),
                pull_cursor: Set(None),
                failing_since: Set(None),
                failing_notified: Set(false),
                last_error: Set(None),
                last_pull_at: Set(None),
                last_push_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?
        }
    };
    if new_connection {
        queue_everyone(&txn, tenant).await?;
    }
    txn.commit().await?;
    tracing::info!(tenant.id = %tenant, "CRM connected");
    // The first exchange starts now rather than at the next scheduled one.
    if let Err(e) = super::runs::start(db, tenant, CrmDirection::Both, SyncTrigger::Scheduled).await
    {
        tracing::warn!(tenant.id = %tenant, error = %e, "could not start the first CRM sync");
    }
    view(db, crm, model).await
}

/// Changes the field mapping or the overrides (what is not given stays).
pub async fn update(
    db: &DatabaseConnection,
    crm: &Crm,
    scope: &TenantScope,
    input: UpdateCrm,
) -> DomainResult<CrmConnection> {
    scope.require(Role::Admin)?;
    let txn = crate::db::begin_write(db).await?;
    let Some(old) = crm_connection::Entity::find_by_id(scope.tenant_id())
        .one(&txn)
        .await?
    else {
        return Err(DomainError::not_found("CRM connection"));
    };
    let before = FieldMapping::from_json(&old.field_mapping);
    let mut a = old.into_active_model();
    if let Some(m) = input.field_mapping {
        let m = m.validated()?;
        // Newly mapped fields are filled for everyone.
        if m != before {
            queue_everyone(&txn, scope.tenant_id()).await?;
        }
        a.field_mapping = Set(serde_json::to_value(m).unwrap_or_default());
    }
    if let Some(o) = input.overrides {
        a.overrides = Set(o.validated()?.to_json());
    }
    a.updated_at = Set(Utc::now());
    let model = a.update(&txn).await?;
    txn.commit().await?;
    view(db, crm, model).await
}

/// The tenant's connection, if any (ADMIN: its webhook URL is a credential).
pub async fn get(
    db: &DatabaseConnection,
    crm: &Crm,
    scope: &TenantScope,
) -> DomainResult<Option<CrmConnection>> {
    scope.require(Role::Admin)?;
    match crm_connection::Entity::find_by_id(scope.tenant_id())
        .one(db)
        .await?
    {
        Some(m) => Ok(Some(view(db, crm, m).await?)),
        None => Ok(None),
    }
}

/// Forgets the connection, its links and pending pushes; its webhook URL stops working at
/// once. Customers stay. Returns whether there was one.
pub async fn disconnect(db: &DatabaseConnection, scope: &TenantScope) -> DomainResult<bool> {
    scope.require(Role::Admin)?;
    let tenant = scope.tenant_id();
    let txn = db.begin().await?;
    forget_links(&txn, tenant).await?;
    let gone = crm_connection::Entity::delete_by_id(tenant)
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    txn.commit().await?;
    if gone {
        tracing::info!(tenant.id = %tenant, "CRM disconnected");
    }
    Ok(gone)
}

/// Puts every customer of the tenant in the outbox (a first push, or new mapped fields).
async fn queue_everyone<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> DomainResult<()> {
    let mut b = crate::db::Binder::new(conn.get_database_backend());
    let t = b.bind(tenant);
    let at = b.bind(Utc::now());
    let no = b.bind(false);
    let sql = format!(
        "INSERT INTO crm_outbox (customer_id, tenant_id, remote_id, deleted, changed_at) \
         SELECT id, tenant_id, NULL, {no}, {at} FROM customers WHERE tenant_id = {t} \
         ON CONFLICT (customer_id) DO NOTHING"
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

async fn forget_links<C: ConnectionTrait>(conn: &C, tenant: Uuid) -> DomainResult<()> {
    entity::crm_link::Entity::delete_many()
        .filter(entity::crm_link::Column::TenantId.eq(tenant))
        .exec(conn)
        .await?;
    entity::crm_outbox::Entity::delete_many()
        .filter(entity::crm_outbox::Column::TenantId.eq(tenant))
        .exec(conn)
        .await?;
    Ok(())
}

async fn view(
    db: &DatabaseConnection,
    crm: &Crm,
    m: crm_connection::Model,
) -> DomainResult<CrmConnection> {
    let linked_customers = entity::crm_link::Entity::find()
        .filter(entity::crm_link::Column::TenantId.eq(m.tenant_id))
        .count(db)
        .await?;
    let pending_pushes = entity::crm_outbox::Entity::find()
        .filter(entity::crm_outbox::Column::TenantId.eq(m.tenant_id))
        .count(db)
        .await?;
    Ok(CrmConnection {
        provider: m.provider,
        base_url: m.base_url,
        webhook_url: crm.webhook_url(&m.webhook_token),
        field_mapping: FieldMapping::from_json(&m.field_mapping),
        overrides: Overrides::from_json(&m.overrides),
        pull_cursor: m.pull_cursor,
        last_pull_at: m.last_pull_at,
        last_push_at: m.last_push_at,
        failing_since: m.failing_since,
        last_error: m.last_error,
        linked_customers,
        pending_pushes,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// The connection's workspace, ready to call, with its request budget.
pub(crate) fn account(crm: &Crm, m: &crm_connection::Model) -> DomainResult<Account> {
    let key = crm
        .cipher()
        .decrypt(&m.api_key_enc, &key_context(m.tenant_id))
        .map_err(|e| DomainError::Internal(format!("CRM key: {e}")))?;
    Ok(Account {
        budget: Some(crm.budget(&m.base_url, &key)),
        base_url: m.base_url.clone(),
        auth: Auth::Bearer(key),
        http: crm.http().clone(),
    })
}

/// The connection's webhook secret.
pub(crate) fn webhook_secret(crm: &Crm, m: &crm_connection::Model) -> DomainResult<String> {
    crm.cipher()
        .decrypt(&m.webhook_secret_enc, &secret_context(m.tenant_id))
        .map_err(|e| DomainError::Internal(format!("CRM webhook secret: {e}")))
}
