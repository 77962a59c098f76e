//! CRM people written into customers, a page at a time in one transaction: found by their
//! link, then by E.164 phone, else created; each field merged against the values both
//! sides last agreed on. Webhooks and pulls both come through here.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::values::LeadStatus;
use entity::{crm_connection, crm_link, customer};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, Set,
};
use uuid::Uuid;

use super::fields::{Field, FieldMapping, Overrides, Values};
use super::merge::merge;
use super::runs::Counts;
use super::twenty::{Person, score_text};
use crate::error::DomainResult;
use crate::phone::{Region, mask};

/// What a connection's people are read with.
pub(crate) struct Context {
    pub tenant: Uuid,
    pub mapping: FieldMapping,
    pub overrides: Overrides,
    pub region: Region,
}

impl Context {
    pub async fn load(
        db: &DatabaseConnection,
        conn: &crm_connection::Model,
    ) -> DomainResult<Context> {
        let region = entity::tenant::Entity::find_by_id(conn.tenant_id)
            .one(db)
            .await?
            .and_then(|t| Region::parse(&t.default_region).ok())
            .or_else(|| Region::parse("US").ok());
        let Some(region) = region else {
            return Err(crate::error::DomainError::Internal(
                "no region to read phone numbers in".into(),
            ));
        };
        Ok(Context {
            tenant: conn.tenant_id,
            mapping: FieldMapping::from_json(&conn.field_mapping),
            overrides: Overrides::from_json(&conn.overrides),
            region,
        })
    }

    /// The two-way fields this connection syncs.
    fn pulled(&self) -> Vec<Field> {
        self.mapping
            .fields()
            .into_iter()
            .filter(|f| f.two_way())
            .collect()
    }
}

/// A customer's values in the CRM's terms (the summary is the caller's to add).
pub(crate) fn local_values(c: &customer::Model, mapping: &FieldMapping) -> Values {
    let mut v = Values::default();
    v.set(Field::Name, c.name.clone());
    v.set(Field::Email, c.email.clone());
    v.set(Field::Phone, Some(c.phone_number.clone()));
    if mapping.lead_status.is_some() {
        v.set(Field::LeadStatus, Some(c.status.as_str().to_owned()));
    }
    if mapping.lead_score.is_some() {
        v.set(Field::LeadScore, c.lead_score.map(score_text));
    }
    if mapping.segment.is_some() {
        v.set(Field::Segment, c.segment.clone());
    }
    v
}

/// A status as the CRM may spell it (`Interested`, `not interested`, `NOT_INTERESTED`).
fn status_of(s: &str) -> Option<LeadStatus> {
    let norm: String = s
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    norm.parse().ok()
}

/// Applies `people` (one connection's) in one transaction; returns what happened.
pub(crate) async fn apply(
    db: &DatabaseConnection,
    ctx: &Context,
    people: Vec<Person>,
) -> DomainResult<Counts> {
    let mut counts = Counts::default();
    if people.is_empty() {
        return Ok(counts);
    }
    // One record once per page: the newest copy.
    let mut by_id: HashMap<String, Person> = HashMap::new();
    for p in people {
        counts.seen += 1;
        match by_id.get(&p.id) {
            Some(old) if old.updated_at >= p.updated_at => {}
            _ => {
                by_id.insert(p.id.clone(), p);
            }
        }
    }
    let people: Vec<Person> = by_id.into_values().collect();
    let tenant = ctx.tenant;
    let fields = ctx.pulled();
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;

    let remote_ids: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    let mut links: HashMap<String, crm_link::Model> = HashMap::new();
    for chunk in remote_ids.chunks(super::CHUNK) {
        for l in crm_link::Entity::find()
            .filter(crm_link::Column::TenantId.eq(tenant))
            .filter(crm_link::Column::RemoteId.is_in(chunk.iter().cloned()))
            .all(&txn)
            .await?
        {
            links.insert(l.remote_id.clone(), l);
        }
    }
    // Unlinked people are matched by phone.
    let phones: Vec<&str> = people
        .iter()
        .filter(|p| !links.contains_key(&p.id) && !p.deleted)
        .filter_map(|p| p.values.get(Field::Phone))
        .collect();
    let by_phone = crate::customers::bulk::customers_by_phone(&txn, tenant, &phones).await?;
    let mut ids: Vec<Uuid> = links.values().map(|l| l.customer_id).collect();
    ids.extend(by_phone.values().copied());
    let mut customers: HashMap<Uuid, customer::Model> = HashMap::new();
    let mut linked_elsewhere: HashSet<Uuid> = HashSet::new();
    for chunk in ids.chunks(super::CHUNK) {
        for c in customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::Id.is_in(chunk.iter().copied()))
            .all(&txn)
            .await?
        {
            customers.insert(c.id, c);
        }
        for l in crm_link::Entity::find()
            .filter(crm_link::Column::CustomerId.is_in(chunk.iter().copied()))
            .all(&txn)
            .await?
        {
            linked_elsewhere.insert(l.customer_id);
        }
    }

    // People whose customer was deleted here and whose deletion is not pushed yet: not
    // brought back.
    let mut deleted_here: HashSet<String> = HashSet::new();
    for chunk in remote_ids.chunks(super::CHUNK) {
        for r in entity::crm_outbox::Entity::find()
            .filter(entity::crm_outbox::Column::TenantId.eq(tenant))
            .filter(entity::crm_outbox::Column::Deleted.eq(true))
            .filter(entity::crm_outbox::Column::RemoteId.is_in(chunk.iter().cloned()))
            .all(&txn)
            .await?
        {
            if let Some(id) = r.remote_id {
                deleted_here.insert(id);
            }
        }
    }
    // Customers this page already matched: a second person with the same number is not
    // linked to the same customer.
    let mut matched: HashSet<Uuid> = HashSet::new();
    let push_only = ctx.mapping.fields().iter().any(|f| !f.two_way());

    let mut new_customers: Vec<customer::ActiveModel> = Vec::new();
    let mut changed: Vec<customer::ActiveModel> = Vec::new();
    let mut new_links: Vec<crm_link::ActiveModel> = Vec::new();
    let mut to_push: Vec<Uuid> = Vec::new();
    let mut created_ids: Vec<Uuid> = Vec::new();
    let mut updated_ids: Vec<Uuid> = Vec::new();
    // Phones taken by this page's writes, so two records cannot claim one number.
    let mut claimed: HashSet<String> = HashSet::new();

    for p in people {
        let link = links.get(&p.id);
        if deleted_here.contains(&p.id) {
            counts.skipped += 1;
            continue;
        }
        if let Some(l) = link
            && let (Some(seen), Some(at)) = (l.remote_updated_at, p.updated_at)
            && at < seen
        {
            // An older copy than one already applied (webhooks arrive out of order).
            counts.skipped += 1;
            continue;
        }
        if p.deleted {
            match link {
                Some(l) if l.remote_deleted_at.is_none() => {
                    let mut a = l.clone().into_active_model();
                    a.remote_deleted_at = Set(Some(now));
                    a.remote_updated_at = Set(p.updated_at.or(l.remote_updated_at));
                    a.synced_at = Set(now);
                    a.update(&txn).await?;
                    counts.updated += 1;
                }
                _ => counts.skipped += 1,
            }
            continue;
        }
        let customer = match link {
            Some(l) => customers.get(&l.customer_id),
            None => p
                .values
                .get(Field::Phone)
                .and_then(|ph| by_phone.get(ph))
                .and_then(|id| customers.get(id)),
        };
        if let Some(c) = customer
            && !matched.insert(c.id)
        {
            counts.skipped += 1;
            counts.error(format!(
                "Twenty person {} has the phone {} of a customer another person here matched",
                p.id,
                mask(&c.phone_number)
            ));
            continue;
        }
        if link.is_none()
            && let Some(c) = customer
            && linked_elsewhere.contains(&c.id)
        {
            counts.skipped += 1;
            counts.error(format!(
                "Twenty person {} has the phone {} of a customer already linked to another person",
                p.id,
                mask(&c.phone_number)
            ));
            continue;
        }
        let mut remote = p.values.clone();
        match customer {
            None => {
                let Some(phone) = remote.get(Field::Phone).map(str::to_owned) else {
                    counts.skipped_no_phone += 1;
                    counts.skipped += 1;
                    if let Some(raw) = &p.unreadable_phone {
                        counts.error(format!(
                            "Twenty person {}: {:?} is not a phone number",
                            p.id,
                            raw.chars().take(40).collect::<String>()
                        ));
                    }
                    continue;
                };
                if !claimed.insert(phone.clone()) || by_phone.contains_key(&phone) {
                    counts.skipped += 1;
                    counts.error(format!(
                        "Twenty person {} shares the phone {} with another person in the same page",
                        p.id,
                        mask(&phone)
                    ));
                    continue;
                }
                let id = Uuid::now_v7();
                let status = remote
                    .get(Field::LeadStatus)
                    .and_then(status_of)
                    .unwrap_or(LeadStatus::New);
                new_customers.push(customer::ActiveModel {
                    id: Set(id),
                    tenant_id: Set(tenant),
                    phone_number: Set(phone),
                    name: Set(remote.get(Field::Name).map(|n| cap(n, 200))),
                    email: Set(remote.get(Field::Email).map(|e| cap(e, 320))),
                    status: Set(status),
                    tags: Set(serde_json::json!([])),
                    lead_score: Set(None),
                    segment: Set(None),
                    score_explanation: Set(None),
                    notes: Set(None),
                    source: Set(Some("TWENTY".to_owned())),
                    last_contacted_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                });
                // What was taken is what both sides now hold.
                let mut base = Values::default();
                for &f in &fields {
                    base.set(f, remote.get(f).map(str::to_owned));
                }
                if ctx.mapping.lead_status.is_some() {
                    base.set(Field::LeadStatus, Some(status.as_str().to_owned()));
                }
                new_links.push(link_row(tenant, id, &p, &base, now));
                created_ids.push(id);
                counts.new_customers += 1;
                counts.created += 1;
                // Fields this side computes (a status it could not read) go out.
                if remote
                    .get(Field::LeadStatus)
                    .is_some_and(|s| status_of(s).is_none())
                {
                    to_push.push(id);
                }
            }
            Some(c) => {
                let local = local_values(c, &ctx.mapping);
                // What cannot be read there is not a change made there.
                if remote
                    .get(Field::LeadStatus)
                    .is_some_and(|s| status_of(s).is_none())
                {
                    remote.set(
                        Field::LeadStatus,
                        local.get(Field::LeadStatus).map(str::to_owned),
                    );
                } else if let Some(s) = remote.get(Field::LeadStatus).and_then(status_of) {
                    remote.set(Field::LeadStatus, Some(s.as_str().to_owned()));
                }
                if p.unreadable_phone.is_some() {
                    remote.set(Field::Phone, local.get(Field::Phone).map(str::to_owned));
                }
                let mut base = link.map(|l| Values::from_json(&l.base));
                // Our own push echoed back before it was recorded: not a change there.
                if let (Some(b), Some(pending)) = (
                    base.as_mut(),
                    link.and_then(|l| l.pending.as_ref()).map(Values::from_json),
                ) {
                    for &f in &fields {
                        if remote.get(f).is_some() && remote.get(f) == pending.get(f) {
                            b.set(f, pending.get(f).map(str::to_owned));
                        }
                    }
                }
                let mut m = merge(
                    &fields,
                    &local,
                    &remote,
                    base.as_ref(),
                    c.updated_at,
                    p.updated_at,
                    &ctx.overrides,
                );
                // A phone taken from the CRM must not be another customer's.
                if m.take.contains(&Field::Phone)
                    && let Some(ph) = remote.get(Field::Phone)
                {
                    let taken = !claimed.insert(ph.to_owned())
                        || crate::customers::bulk::customers_by_phone(&txn, tenant, &[ph])
                            .await?
                            .get(ph)
                            .is_some_and(|other| *other != c.id);
                    if taken {
                        m.take.retain(|f| *f != Field::Phone);
                        m.base.set(
                            Field::Phone,
                            base.as_ref()
                                .and_then(|b| b.get(Field::Phone))
                                .map(str::to_owned),
                        );
                        counts.error(format!(
                            "Twenty person {}: the phone {} belongs to another customer here; kept {}",
                            p.id,
                            mask(ph),
                            mask(&c.phone_number)
                        ));
                    }
                }
                counts.conflicts += m.conflicts.len() as i32;
                if !m.take.is_empty() {
                    let mut a = c.clone().into_active_model();
                    for f in &m.take {
                        let v = remote.get(*f);
                        match f {
                            Field::Name => a.name = Set(v.map(|n| cap(n, 200))),
                            Field::Email => a.email = Set(v.map(|e| cap(e, 320))),
                            Field::Phone => {
                                if let Some(ph) = v {
                                    a.phone_number = Set(ph.to_owned());
                                }
                            }
                            Field::LeadStatus => {
                                if let Some(s) = v.and_then(status_of) {
                                    a.status = Set(s);
                                }
                            }
                            _ => {}
                        }
                    }
                    a.updated_at = Set(now);
                    changed.push(a);
                    updated_ids.push(c.id);
                    counts.updated_customers += 1;
                    counts.updated += 1;
                } else {
                    counts.skipped += 1;
                }
                // A first match also sends what only this side computes.
                if !m.push.is_empty() || (link.is_none() && push_only) {
                    to_push.push(c.id);
                }
                new_links.push(link_row(tenant, c.id, &p, &m.base, now));
            }
        }
    }

    for chunk in new_customers.chunks(super::CHUNK) {
        customer::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for a in changed {
        a.update(&txn).await?;
    }
    upsert_links(&txn, new_links).await?;
    super::outbox::mark(&txn, tenant, &to_push).await?;
    let webhooks =
        crate::outbound::record::customer_events(&txn, tenant, &created_ids, &updated_ids).await?;
    txn.commit().await?;
    crate::outbound::wake_if(webhooks);
    Ok(counts)
}

fn cap(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

pub(crate) fn link_row(
    tenant: Uuid,
    customer: Uuid,
    p: &Person,
    base: &Values,
    now: DateTime<Utc>,
) -> crm_link::ActiveModel {
    crm_link::ActiveModel {
        customer_id: Set(customer),
        tenant_id: Set(tenant),
        remote_id: Set(p.id.clone()),
        base: Set(base.to_json()),
        remote_updated_at: Set(p.updated_at),
        remote_deleted_at: Set(None),
        pending: Set(None),
        synced_at: Set(now),
    }
}

/// Inserts or replaces links (by customer).
pub(crate) async fn upsert_links<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<crm_link::ActiveModel>,
) -> DomainResult<()> {
    for chunk in rows.chunks(super::CHUNK) {
        crm_link::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(crm_link::Column::CustomerId)
                    .update_columns([
                        crm_link::Column::RemoteId,
                        crm_link::Column::Base,
                        crm_link::Column::RemoteUpdatedAt,
                        crm_link::Column::RemoteDeletedAt,
                        crm_link::Column::Pending,
                        crm_link::Column::SyncedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses_as_a_crm_spells_them() {
        use super::status_of;
        use entity::values::LeadStatus;
        assert_eq!(status_of("Interested"), Some(LeadStatus::Interested));
        assert_eq!(status_of("not interested"), Some(LeadStatus::NotInterested));
        assert_eq!(status_of("DO-NOT-CALL"), Some(LeadStatus::DoNotCall));
        assert_eq!(status_of("Qualified"), None);
    }
}
