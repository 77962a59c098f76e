//! Customer use cases: validation, phone normalisation, duplicates, merging.

use chrono::Utc;
use entity::{call, customer};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set, TransactionTrait,
};
use uuid::Uuid;

use super::repo;
use crate::error::{DomainError, DomainResult, OnConflict};
use crate::outbound::{self, EventType, payloads};
use crate::phone::PhoneNumber;
use crate::tenancy::TenantScope;
use crate::types::{LeadStatus, Role};

const DUPLICATE_PHONE: &str = "a customer with this phone number already exists";
const MAX_TAGS: usize = 50;

#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub status: Option<LeadStatus>,
    /// Name (case-insensitive substring) or phone number in any format.
    pub search: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewCustomer {
    pub phone_number: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: Option<LeadStatus>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub segment: Option<String>,
    pub source: Option<String>,
    pub lead_score: Option<f64>,
}

/// `None` leaves a field unchanged; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub phone_number: Option<String>,
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub status: Option<LeadStatus>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<Option<String>>,
    pub segment: Option<Option<String>>,
    pub lead_score: Option<Option<f64>>,
}

fn parse_phone(scope: &TenantScope, raw: &str) -> DomainResult<PhoneNumber> {
    PhoneNumber::parse(raw, scope.region())
        .map_err(|e| DomainError::invalid("phoneNumber", e.to_string()))
}

fn text(field: &'static str, value: Option<String>, max: usize) -> DomainResult<Option<String>> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v)),
    }
}

fn email(value: Option<String>) -> DomainResult<Option<String>> {
    let Some(v) = text("email", value, 254)? else {
        return Ok(None);
    };
    let valid = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(Some(v))
    } else {
        Err(DomainError::invalid("email", "is not an email address"))
    }
}

fn score(value: Option<f64>) -> DomainResult<Option<f64>> {
    match value {
        Some(s) if !(0.0..=100.0).contains(&s) => Err(DomainError::invalid(
            "leadScore",
            "must be between 0 and 100",
        )),
        other => Ok(other),
    }
}

/// Tags are trimmed, lower-cased and deduplicated, keeping first-seen order.
fn tags(raw: Vec<String>) -> DomainResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim().to_lowercase();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > 64 {
            return Err(DomainError::invalid(
                "tags",
                "each tag must be at most 64 characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(DomainError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

fn tags_of(model: &customer::Model) -> Vec<String> {
    serde_json::from_value(model.tags.clone()).unwrap_or_default()
}

pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<customer::Model> {
    repo::find(db, scope, id)
        .await?
        .ok_or(DomainError::not_found("customer"))
}

/// Looks a customer up by a number in any format, read in the tenant's default region.
pub async fn by_phone(
    db: &DatabaseConnection,
    scope: &TenantScope,
    raw: &str,
) -> DomainResult<Option<customer::Model>> {
    let phone = parse_phone(scope, raw)?;
    repo::find_by_phone(db, scope, &phone).await
}

pub async fn create(
    db: &DatabaseConnection,
    scope: &TenantScope,
    input: NewCustomer,
) -> DomainResult<customer::Model> {
    scope.require(Role::Member)?;
    let phone = parse_phone(scope, &input.phone_number)?;
    let tags = tags(input.tags)?;
    let now = Utc::now();
    let model = customer::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(scope.tenant_id()),
        phone_number: Set(phone.into_string()),
        name: Set(text("name", input.name, 200)?),
        email: Set(email(input.email)?),
        status: Set(input.status.unwrap_or(LeadStatus::New)),
        tags: Set(serde_json::json!(tags)),
        lead_score: Set(score(input.lead_score)?),
        segment: Set(text("segment", input.segment, 100)?),
        score_explanation: Set(None),
        notes: Set(text("notes", input.notes, 10_000)?),
        source: Set(text("source", input.source, 100)?.or(Some("API".to_owned()))),
        last_contacted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = db.begin().await?;
    let created = model
        .insert(&txn)
        .await
        .on_conflict("phoneNumber", DUPLICATE_PHONE)?;
    repo::replace_tags(&txn, scope, created.id, &tags).await?;
    crate::crm::outbox::mark(&txn, scope.tenant_id(), &[created.id]).await?;
    let webhooks = outbound::record_events(
        &txn,
        vec![payloads::customer_event(
            EventType::CustomerCreated,
            &created,
        )],
    )
    .await?;
    txn.commit().await?;
    outbound::wake_if(webhooks);
    Ok(created)
}

pub async fn update(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
    patch: CustomerPatch,
) -> DomainResult<customer::Model> {
    scope.require(Role::Member)?;
    let current = get(db, scope, id).await?;
    let mut active = current.into_active_model();
    if let Some(raw) = patch.phone_number {
        active.phone_number = Set(parse_phone(scope, &raw)?.into_string());
    }
    if let Some(v) = patch.name {
        active.name = Set(text("name", v, 200)?);
    }
    if let Some(v) = patch.email {
        active.email = Set(email(v)?);
    }
    if let Some(v) = patch.status {
        active.status = Set(v);
    }
    if let Some(v) = patch.notes {
        active.notes = Set(text("notes", v, 10_000)?);
    }
    if let Some(v) = patch.segment {
        active.segment = Set(text("segment", v, 100)?);
    }
    if let Some(v) = patch.lead_score {
        active.lead_score = Set(score(v)?);
    }
    let new_tags = patch.tags.map(tags).transpose()?;
    if let Some(t) = &new_tags {
        active.tags = Set(serde_json::json!(t));
    }
    active.updated_at = Set(Utc::now());
    let txn = db.begin().await?;
    let updated = active
        .update(&txn)
        .await
        .on_conflict("phoneNumber", DUPLICATE_PHONE)?;
    if let Some(t) = &new_tags {
        repo::replace_tags(&txn, scope, id, t).await?;
    }
    crate::crm::outbox::mark(&txn, scope.tenant_id(), &[id]).await?;
    let webhooks = outbound::record_events(
        &txn,
        vec![payloads::customer_event(
            EventType::CustomerUpdated,
            &updated,
        )],
    )
    .await?;
    txn.commit().await?;
    outbound::wake_if(webhooks);
    Ok(updated)
}

/// Deletes the customer; their calls stay, detached.
pub async fn delete(db: &DatabaseConnection, scope: &TenantScope, id: Uuid) -> DomainResult<bool> {
    scope.require(Role::Member)?;
    let txn = db.begin().await?;
    // The CRM's copy goes at the next push.
    crate::crm::outbox::mark_deleted(&txn, scope.tenant_id(), id).await?;
    let res = customer::Entity::delete_many()
        .filter(customer::Column::TenantId.eq(scope.tenant_id()))
        .filter(customer::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(DomainError::not_found("customer"));
    }
    txn.commit().await?;
    Ok(true)
}

/// Folds `duplicate_id` into `primary_id`: calls (and so interactions) move over, empty
/// fields of the primary are filled from the duplicate, tags are united, and the duplicate is deleted.
pub async fn merge(
    db: &DatabaseConnection,
    scope: &TenantScope,
    primary_id: Uuid,
    duplicate_id: Uuid,
) -> DomainResult<customer::Model> {
    scope.require(Role::Member)?;
    if primary_id == duplicate_id {
        return Err(DomainError::invalid(
            "duplicateId",
            "must differ from primaryId",
        ));
    }
    let txn = db.begin().await?;
    let primary = repo::find(&txn, scope, primary_id)
        .await?
        .ok_or(DomainError::not_found("customer"))?;
    let duplicate = repo::find(&txn, scope, duplicate_id)
        .await?
        .ok_or(DomainError::not_found("customer"))?;

    call::Entity::update_many()
        .col_expr(call::Column::CustomerId, Expr::value(primary.id))
        .filter(call::Column::TenantId.eq(scope.tenant_id()))
        .filter(call::Column::CustomerId.eq(duplicate.id))
        .exec(&txn)
        .await?;

    let mut merged_tags = tags_of(&primary);
    for t in tags_of(&duplicate) {
        if !merged_tags.contains(&t) {
            merged_tags.push(t);
        }
    }
    merged_tags.truncate(MAX_TAGS);
    let status = if primary.status == LeadStatus::New {
        duplicate.status
    } else {
        primary.status
    };
    let last_contacted_at = match (primary.last_contacted_at, duplicate.last_contacted_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let lead_score = match (primary.lead_score, duplicate.lead_score) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let notes = match (&primary.notes, &duplicate.notes) {
        (Some(a), Some(b)) if a != b => Some(format!("{a}\n\n{b}")),
        (a, b) => a.clone().or(b.clone()),
    };

    // The duplicate's CRM person goes too (as a deletion here would take it).
    crate::crm::outbox::mark_deleted(&txn, scope.tenant_id(), duplicate.id).await?;
    // Delete first: the duplicate's tag rows go with it (cascade), freeing the unique keys.
    customer::Entity::delete_by_id(duplicate.id)
        .exec(&txn)
        .await?;

    let mut active = primary.clone().into_active_model();
    active.name = Set(primary.name.clone().or(duplicate.name));
    active.email = Set(primary.email.clone().or(duplicate.email));
    active.segment = Set(primary.segment.clone().or(duplicate.segment));
    active.source = Set(primary.source.clone().or(duplicate.source));
    active.notes = Set(notes);
    active.status = Set(status);
    active.lead_score = Set(lead_score);
    active.last_contacted_at = Set(last_contacted_at);
    active.tags = Set(serde_json::json!(merged_tags));
    active.updated_at = Set(Utc::now());
    let merged = active.update(&txn).await?;
    repo::replace_tags(&txn, scope, merged.id, &merged_tags).await?;
    crate::crm::outbox::mark(&txn, scope.tenant_id(), &[merged.id]).await?;
    let webhooks = outbound::record_events(
        &txn,
        vec![payloads::customer_event(
            EventType::CustomerUpdated,
            &merged,
        )],
    )
    .await?;
    txn.commit().await?;
    outbound::wake_if(webhooks);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised() {
        let t = tags(vec![" VIP ".into(), "vip".into(), "".into(), "Hot".into()]).unwrap();
        assert_eq!(t, vec!["vip", "hot"]);
        assert!(tags((0..51).map(|i| i.to_string()).collect()).is_err());
    }

    #[test]
    fn emails() {
        assert!(email(Some("a@b.co".into())).unwrap().is_some());
        assert!(email(Some("".into())).unwrap().is_none());
        for bad in ["nope", "a@b", "@b.co", "a b@c.de", "a@.com"] {
            assert!(email(Some(bad.into())).is_err(), "{bad}");
        }
    }
}
