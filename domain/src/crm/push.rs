//! A push: the outbox, oldest change first, 60 customers a batch. Customers never linked
//! are looked up by phone first (so a retried create finds its person instead of making a
//! second one), then created; linked ones send only the fields changed since both sides
//! last agreed; deleted ones delete their person. A change made while a batch was out
//! keeps its outbox row for the next batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{crm_link, crm_outbox, customer};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use super::apply::{Context, apply, link_row, local_values, upsert_links};
use super::fields::{Field, Values};
use super::runs::Counts;
use super::twenty::{Account, PAGE, Person, person_record, read_person};
use crate::db::Binder;
use crate::error::DomainResult;
use crate::http::HttpError;
use crate::phone::PhoneNumber;

/// Batches one run sends at most (the rest wait for the next run).
const MAX_BATCHES: usize = 200;
/// Longest summary sent.
const MAX_SUMMARY: usize = 2000;

pub(crate) enum PushError {
    Crm(HttpError),
    Store(String),
}

impl From<crate::error::DomainError> for PushError {
    fn from(e: crate::error::DomainError) -> Self {
        PushError::Store(e.to_string())
    }
}

impl From<sea_orm::DbErr> for PushError {
    fn from(e: sea_orm::DbErr) -> Self {
        PushError::Store(e.to_string())
    }
}

pub(crate) async fn push(
    db: &DatabaseConnection,
    ctx: &Context,
    account: &Account,
    counts: &mut Counts,
    progress: &mut super::runs::Progress<'_>,
) -> Result<(), PushError> {
    for _ in 0..MAX_BATCHES {
        let rows = crm_outbox::Entity::find()
            .filter(crm_outbox::Column::TenantId.eq(ctx.tenant))
            .order_by_asc(crm_outbox::Column::ChangedAt)
            .limit(PAGE as u64)
            .all(db)
            .await?;
        if rows.is_empty() {
            break;
        }
        // A batch that settled nothing (Twenty confirmed none of it) is tried again by the
        // next run, not at once.
        if batch(db, ctx, account, rows, counts).await? == 0 {
            break;
        }
        progress.tick(counts).await;
    }
    Ok(())
}

/// A record on its way, and what its link becomes once Twenty has it.
struct Outgoing {
    customer: Uuid,
    phone: String,
    remote_id: Option<String>,
    base: Values,
}

async fn batch(
    db: &DatabaseConnection,
    ctx: &Context,
    account: &Account,
    rows: Vec<crm_outbox::Model>,
    counts: &mut Counts,
) -> Result<usize, PushError> {
    let mut done: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    // Deleted here: delete there.
    for r in rows.iter().filter(|r| r.deleted) {
        if let Some(remote) = &r.remote_id {
            match account.delete(remote).await {
                Ok(()) => counts.updated += 1,
                // Refused for this record: reported, not retried for ever.
                Err(HttpError::Rejected { status, message }) => counts.error(format!(
                    "Twenty refused to delete person {remote} (HTTP {status}): {message}"
                )),
                Err(e) => return Err(PushError::Crm(e)),
            }
        }
        done.push((r.customer_id, r.changed_at));
    }
    let ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| !r.deleted)
        .map(|r| r.customer_id)
        .collect();
    let customers: HashMap<Uuid, customer::Model> = customer::Entity::find()
        .filter(customer::Column::TenantId.eq(ctx.tenant))
        .filter(customer::Column::Id.is_in(ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut links = links_of(db, &ids).await?;

    // Never linked: the CRM may hold them already (made there, or by a push whose answer
    // was lost). Those are merged like a pull would, then pushed as linked ones.
    let unlinked: Vec<PhoneNumber> = ids
        .iter()
        .filter(|id| !links.contains_key(id))
        .filter_map(|id| customers.get(id))
        .map(|c| PhoneNumber::from_e164_unchecked(c.phone_number.clone()))
        .collect();
    if !unlinked.is_empty() {
        let mut found: Vec<Person> = Vec::new();
        // Each number is looked for in two forms: a page's worth of forms per request.
        for chunk in unlinked.chunks(PAGE / 2) {
            let refs: Vec<&PhoneNumber> = chunk.iter().collect();
            found.extend(
                account
                    .people_with_phones(&refs)
                    .await
                    .map_err(PushError::Crm)?
                    .iter()
                    .filter_map(|r| read_person(r, &ctx.mapping, ctx.region))
                    .filter(|p| !p.deleted),
            );
        }
        if !found.is_empty() {
            let c = apply(db, ctx, found).await?;
            counts.conflicts += c.conflicts;
            counts.updated_customers += c.updated_customers;
            for e in c.errors {
                counts.error(e);
            }
            links = links_of(db, &ids).await?;
        }
    }
    let summaries = if ctx.mapping.last_call_summary.is_some() {
        last_summaries(db, ctx.tenant, &ids).await?
    } else {
        HashMap::new()
    };
    let fields = ctx.mapping.fields();
    let mut records: Vec<Value> = Vec::new();
    let mut outgoing: Vec<Outgoing> = Vec::new();
    for r in rows.iter().filter(|r| !r.deleted) {
        let Some(c) = customers.get(&r.customer_id) else {
            // Deleted since: nothing to send.
            done.push((r.customer_id, r.changed_at));
            continue;
        };
        let mut local = local_values(c, &ctx.mapping);
        if ctx.mapping.last_call_summary.is_some() {
            local.set(
                Field::LastCallSummary,
                summaries
                    .get(&c.id)
                    .map(|s| s.chars().take(MAX_SUMMARY).collect()),
            );
        }
        match links.get(&c.id) {
            Some(l) if l.remote_deleted_at.is_some() => {
                // Deleted in the CRM: not brought back from here.
                counts.skipped += 1;
                done.push((r.customer_id, r.changed_at));
            }
            Some(l) => {
                let base = Values::from_json(&l.base);
                let changed: Vec<Field> = fields
                    .iter()
                    .copied()
                    .filter(|f| local.get(*f) != base.get(*f))
                    .collect();
                if changed.is_empty() {
                    done.push((r.customer_id, r.changed_at));
                    continue;
                }
                records.push(person_record(
                    Some(&l.remote_id),
                    &local,
                    &changed,
                    &ctx.mapping,
                ));
                let mut next = base.clone();
                for f in &changed {
                    next.set(*f, local.get(*f).map(str::to_owned));
                }
                outgoing.push(Outgoing {
                    customer: c.id,
                    phone: c.phone_number.clone(),
                    remote_id: Some(l.remote_id.clone()),
                    base: next,
                });
            }
            None => {
                records.push(person_record(None, &local, &fields, &ctx.mapping));
                let mut next = Values::default();
                for f in &fields {
                    next.set(*f, local.get(*f).map(str::to_owned));
                }
                outgoing.push(Outgoing {
                    customer: c.id,
                    phone: c.phone_number.clone(),
                    remote_id: None,
                    base: next,
                });
            }
        }
    }
    let mut new_links = Vec::new();
    if !records.is_empty() {
        mark_pending(db, &outgoing).await?;
        let answers = send(account, ctx, records, &outgoing).await?;
        let returned: Vec<String> = answers
            .iter()
            .filter_map(|a| match a {
                Answer::Done(p) => Some(p.id.clone()),
                _ => None,
            })
            .collect();
        let taken: HashMap<String, Uuid> = crm_link::Entity::find()
            .filter(crm_link::Column::TenantId.eq(ctx.tenant))
            .filter(crm_link::Column::RemoteId.is_in(returned))
            .all(db)
            .await?
            .into_iter()
            .map(|l| (l.remote_id, l.customer_id))
            .collect();
        let now = Utc::now();
        for (o, answer) in outgoing.iter().zip(answers) {
            let at = rows
                .iter()
                .find(|r| r.customer_id == o.customer)
                .map(|r| r.changed_at);
            let answer = match answer {
                // A create Twenty merged into a person another customer is linked to (or
                // answered with someone else's number) is not linked here.
                Answer::Done(p)
                    if o.remote_id.is_none()
                        && (p.values.get(Field::Phone) != Some(o.phone.as_str())
                            || taken.get(&p.id).is_some_and(|c| *c != o.customer)) =>
                {
                    Answer::Refused(format!(
                        "Twenty answered with person {}, which is another customer's",
                        p.id
                    ))
                }
                a => a,
            };
            match answer {
                Answer::Done(p) => {
                    if o.remote_id.is_some() {
                        counts.updated += 1;
                    } else {
                        counts.created += 1;
                    }
                    new_links.push(link_row(ctx.tenant, o.customer, &p, &o.base, now));
                    if let Some(at) = at {
                        done.push((o.customer, at));
                    }
                }
                Answer::Unconfirmed => {
                    // Not resent at once (it would come back the same way): its next change
                    // looks the person up by phone and links it.
                    counts.error(format!(
                        "Twenty did not confirm the person of customer {}",
                        o.customer
                    ));
                    if let Some(at) = at {
                        done.push((o.customer, at));
                    }
                }
                Answer::Refused(why) => {
                    // Sent again it would be refused again and hold up the queue: the change
                    // stays unsent (its fields differ from the link's) until the next one.
                    counts.skipped += 1;
                    counts.error(format!("Twenty refused customer {}: {why}", o.customer));
                    if let Some(at) = at {
                        done.push((o.customer, at));
                    }
                }
            }
        }
    }
    let txn = crate::db::begin_write(db).await?;
    // Customers deleted while the batch was out have no row to link.
    let still: Vec<Uuid> = new_links
        .iter()
        .filter_map(|l| match &l.customer_id {
            sea_orm::ActiveValue::Set(id) => Some(*id),
            _ => None,
        })
        .collect();
    let alive: std::collections::HashSet<Uuid> = customer::Entity::find()
        .filter(customer::Column::Id.is_in(still))
        .select_only()
        .column(customer::Column::Id)
        .into_tuple::<Uuid>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    new_links
        .retain(|l| matches!(&l.customer_id, sea_orm::ActiveValue::Set(id) if alive.contains(id)));
    upsert_links(&txn, new_links).await?;
    finish_rows(&txn, &done).await?;
    txn.commit().await?;
    Ok(done.len())
}

enum Answer {
    Done(Person),
    /// Twenty answered without this record.
    Unconfirmed,
    /// Twenty refused this record (HTTP 4xx).
    Refused(String),
}

/// Sends a batch; when Twenty refuses it whole, each record alone, so one bad record
/// does not hold up the others. An outage ends the push.
async fn send(
    account: &Account,
    ctx: &Context,
    records: Vec<Value>,
    outgoing: &[Outgoing],
) -> Result<Vec<Answer>, PushError> {
    match account.upsert(records.clone()).await {
        Ok(answer) => Ok(match_answer(ctx, &answer, outgoing)),
        Err(HttpError::Rejected { status, message }) if records.len() == 1 => {
            Ok(vec![Answer::Refused(format!("HTTP {status}: {message}"))])
        }
        Err(HttpError::Rejected { .. }) => {
            let mut out = Vec::with_capacity(records.len());
            for (r, o) in records.into_iter().zip(outgoing) {
                match account.upsert(vec![r]).await {
                    Ok(answer) => out.extend(match_answer(ctx, &answer, std::slice::from_ref(o))),
                    Err(HttpError::Rejected { status, message }) => {
                        out.push(Answer::Refused(format!("HTTP {status}: {message}")))
                    }
                    Err(e) => return Err(PushError::Crm(e)),
                }
            }
            Ok(out)
        }
        Err(e) => Err(PushError::Crm(e)),
    }
}

/// Twenty's records for `outgoing`: in the order sent when all came back, else by phone.
fn match_answer(ctx: &Context, answer: &[Value], outgoing: &[Outgoing]) -> Vec<Answer> {
    let people: Vec<Option<Person>> = answer
        .iter()
        .map(|r| read_person(r, &ctx.mapping, ctx.region))
        .collect();
    let by_phone: HashMap<&str, &Person> = people
        .iter()
        .flatten()
        .filter_map(|p| p.values.get(Field::Phone).map(|ph| (ph, p)))
        .collect();
    outgoing
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let person = if people.len() == outgoing.len() {
                people[i].as_ref()
            } else {
                by_phone.get(o.phone.as_str()).copied()
            };
            match person.filter(|p| o.remote_id.as_ref().is_none_or(|id| *id == p.id)) {
                Some(p) => Answer::Done(p.clone()),
                None => Answer::Unconfirmed,
            }
        })
        .collect()
}

/// Notes on each linked record what is being sent, before it is sent.
async fn mark_pending(db: &DatabaseConnection, outgoing: &[Outgoing]) -> DomainResult<()> {
    use sea_orm::sea_query::Expr;
    for o in outgoing.iter().filter(|o| o.remote_id.is_some()) {
        crm_link::Entity::update_many()
            .col_expr(
                crm_link::Column::Pending,
                Expr::value(Some(o.base.to_json())),
            )
            .filter(crm_link::Column::CustomerId.eq(o.customer))
            .exec(db)
            .await?;
    }
    Ok(())
}

async fn links_of(
    db: &DatabaseConnection,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, crm_link::Model>> {
    Ok(crm_link::Entity::find()
        .filter(crm_link::Column::CustomerId.is_in(ids.to_vec()))
        .all(db)
        .await?
        .into_iter()
        .map(|l| (l.customer_id, l))
        .collect())
}

/// Outbox rows sent: each goes unless it changed again since it was read.
async fn finish_rows<C: ConnectionTrait>(
    conn: &C,
    done: &[(Uuid, DateTime<Utc>)],
) -> DomainResult<()> {
    for (id, at) in done {
        crm_outbox::Entity::delete_many()
            .filter(crm_outbox::Column::CustomerId.eq(*id))
            .filter(crm_outbox::Column::ChangedAt.lte(*at))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Each customer's newest call summary (the analysis's, else the provider's).
async fn last_summaries(
    db: &DatabaseConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut b = Binder::new(db.get_database_backend());
    let t = b.bind(tenant);
    let yes = b.bind(true);
    let list = b.list(super::uuid_list(ids));
    let sql = format!(
        "SELECT c.customer_id, COALESCE(a.summary, c.summary) AS summary FROM calls c \
         LEFT JOIN call_analyses a ON a.call_id = c.id AND a.current = {yes} \
         WHERE c.tenant_id = {t} AND c.customer_id IN ({list}) \
         AND COALESCE(a.summary, c.summary) IS NOT NULL \
         ORDER BY c.customer_id, c.created_at DESC"
    );
    let mut out = HashMap::new();
    for row in db.query_all_raw(b.statement(sql)).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let s: String = row.try_get("", "summary")?;
        out.entry(id).or_insert(s);
    }
    Ok(out)
}
