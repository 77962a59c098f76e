//! Messages in and out. Inbound messages become the customer's conversation (the customer
//! is created by its WhatsApp number if unknown) and open the 24-hour customer-service
//! window; statuses arrive duplicated and out of order and converge on the highest (a
//! message never goes from read back to delivered); free-form replies are sent only
//! inside the window.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{customer, whatsapp_message};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::WhatsApp;
use super::cloud::{MetaError, printable, send};
use super::connection::{access_token, load};
use crate::customers::bulk::upsert_customer;
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::phone::{PhoneNumber, Region};
use crate::tenancy::TenantScope;
use crate::types::{EventSource, Role};

/// Hours after a customer's last message during which free-form replies may be sent.
pub const WINDOW_HOURS: i64 = 24;
/// Longest text kept or sent (Meta's limit for a text body).
const MAX_TEXT: usize = 4096;
/// Largest message object kept as it came (types we do not render).
const MAX_PAYLOAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "INBOUND",
            Direction::Outbound => "OUTBOUND",
        }
    }
}

/// Where a message stands; the rank only rises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Received,
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Received,
        MessageStatus::Accepted,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "RECEIVED",
            MessageStatus::Accepted => "ACCEPTED",
            MessageStatus::Sent => "SENT",
            MessageStatus::Delivered => "DELIVERED",
            MessageStatus::Read => "READ",
            MessageStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// A failure is final: a later "delivered" (another device) does not undo it.
    pub fn rank(self) -> i32 {
        match self {
            MessageStatus::Received => 0,
            MessageStatus::Accepted => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
            MessageStatus::Failed => 5,
        }
    }
}

/// Unix seconds as Meta sends them (a string), within sane bounds; now otherwise.
fn meta_time(v: &Value) -> DateTime<Utc> {
    let secs = v
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .or_else(|| v.as_i64());
    secs.and_then(|s| Utc.timestamp_opt(s, 0).single())
        .map(crate::time::clamp_reported)
        .unwrap_or_else(Utc::now)
}

/// The text of a message we render, and its kind.
fn text_of(m: &Value) -> (String, Option<String>) {
    let kind = printable(m["type"].as_str().unwrap_or("unknown"), 40);
    let text = match kind.as_str() {
        "text" => m["text"]["body"].as_str(),
        "button" => m["button"]["text"].as_str(),
        "interactive" => m["interactive"]["button_reply"]["title"]
            .as_str()
            .or_else(|| m["interactive"]["list_reply"]["title"].as_str()),
        "image" | "video" | "document" => m[kind.as_str()]["caption"].as_str(),
        "reaction" => m["reaction"]["emoji"].as_str(),
        _ => None,
    };
    (kind, text.map(printable_text))
}

/// A message text: newlines kept, other control characters dropped, capped.
fn printable_text(t: &str) -> String {
    t.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_TEXT)
        .collect()
}

/// Stores the inbound messages of one webhook change (with its `contacts`), creating
/// unknown customers by number. A repeated message (same `wamid`) is a no-op. The new
/// messages, for dashboards.
pub(crate) async fn apply_inbound<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    region: Region,
    value: &Value,
) -> DomainResult<Vec<whatsapp_message::Model>> {
    let Some(messages) = value["messages"].as_array() else {
        return Ok(Vec::new());
    };
    let contacts = value["contacts"].as_array();
    let mut out = Vec::new();
    for m in messages.iter().take(1000) {
        let Some(wamid) = m["id"].as_str().filter(|w| !w.is_empty() && w.len() <= 200) else {
            continue;
        };
        let from = m["from"].as_str().unwrap_or("");
        let name = contacts
            .and_then(|cs| cs.iter().find(|c| c["wa_id"].as_str() == Some(from)))
            .and_then(|c| c["profile"]["name"].as_str())
            .map(|n| printable(n, 200))
            .filter(|n| !n.is_empty());
        // Newer payloads may carry no number at all: the message is kept without a customer.
        let digits: String = from.chars().filter(char::is_ascii_digit).collect();
        let phone = (!digits.is_empty() && digits.len() <= 15)
            .then(|| PhoneNumber::parse(&format!("+{digits}"), region).ok())
            .flatten();
        let at = meta_time(&m["timestamp"]);
        let customer_id = match &phone {
            Some(p) => {
                let (id, created) =
                    upsert_customer(conn, tenant, p, name, EventSource::Webhook, Some(at)).await?;
                if created {
                    crate::outbound::record::customer_changes(conn, tenant, &[id], &[]).await?;
                }
                Some(id)
            }
            None => None,
        };
        let (kind, body) = text_of(m);
        let payload = (kind != "text")
            .then(|| m.clone())
            .filter(|p| p.to_string().len() <= MAX_PAYLOAD);
        let now = Utc::now();
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "INSERT INTO whatsapp_messages (id, tenant_id, customer_id, direction, wamid, kind, body, payload, \
             status, status_rank, error_code, error_title, template_name, sent_at, created_at, updated_at) \
             VALUES {} ON CONFLICT (tenant_id, wamid) DO NOTHING RETURNING *",
            b.row([
                Uuid::now_v7().into(),
                tenant.into(),
                customer_id.into(),
                Direction::Inbound.as_str().into(),
                wamid.to_owned().into(),
                kind.into(),
                body.into(),
                payload.into(),
                MessageStatus::Received.as_str().into(),
                MessageStatus::Received.rank().into(),
                Option::<i32>::None.into(),
                Option::<String>::None.into(),
                Option::<String>::None.into(),
                at.into(),
                now.into(),
                now.into(),
            ])
        );
        if let Some(row) = whatsapp_message::Entity::find()
            .from_raw_sql(b.statement(sql))
            .one(conn)
            .await?
        {
            out.push(row);
        }
    }
    Ok(out)
}

/// Applies the delivery statuses of one webhook change: each message takes the highest
/// status reported, whatever the order they arrive in. The messages that moved.
pub(crate) async fn apply_statuses<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    value: &Value,
) -> DomainResult<Vec<whatsapp_message::Model>> {
    let Some(statuses) = value["statuses"].as_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in statuses.iter().take(1000) {
        let (Some(wamid), Some(status)) = (
            s["id"].as_str().filter(|w| !w.is_empty() && w.len() <= 200),
            s["status"].as_str().and_then(MessageStatus::parse),
        ) else {
            continue;
        };
        let error = &s["errors"][0];
        let code = error["code"].as_i64().and_then(|c| i32::try_from(c).ok());
        let title = error["title"]
            .as_str()
            .or_else(|| error["message"].as_str())
            .map(|t| {
                let details = error["error_data"]["details"].as_str();
                printable(
                    &match details {
                        Some(d) => format!("{t}: {d}"),
                        None => t.to_owned(),
                    },
                    500,
                )
            });
        // One statement whatever came first: the message's record takes the higher
        // status; a status that beat the answer to the send itself is kept with only its
        // status and no customer (so a message another tool sent on this number stays out
        // of every history), and the send's own record fills in the rest.
        let now = Utc::now();
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "INSERT INTO whatsapp_messages (id, tenant_id, customer_id, direction, wamid, kind, body, payload, \
             status, status_rank, error_code, error_title, template_name, sent_at, created_at, updated_at) \
             VALUES {} ON CONFLICT (tenant_id, wamid) DO UPDATE SET status = excluded.status, \
             status_rank = excluded.status_rank, \
             error_code = COALESCE(excluded.error_code, whatsapp_messages.error_code), \
             error_title = COALESCE(excluded.error_title, whatsapp_messages.error_title), \
             updated_at = excluded.updated_at \
             WHERE whatsapp_messages.direction = 'OUTBOUND' AND whatsapp_messages.status_rank < excluded.status_rank \
             RETURNING *",
            b.row([
                Uuid::now_v7().into(),
                tenant.into(),
                Option::<Uuid>::None.into(),
                Direction::Outbound.as_str().into(),
                wamid.to_owned().into(),
                "unknown".into(),
                Option::<String>::None.into(),
                Option::<Value>::None.into(),
                status.as_str().into(),
                status.rank().into(),
                code.into(),
                title.into(),
                Option::<String>::None.into(),
                meta_time(&s["timestamp"]).into(),
                now.into(),
                now.into(),
            ])
        );
        if let Some(row) = whatsapp_message::Entity::find()
            .from_raw_sql(b.statement(sql))
            .one(conn)
            .await?
        {
            out.push(row);
        }
    }
    Ok(out)
}

/// Campaign items whose message failed after Meta accepted it (undeliverable, outside
/// the window...) fail too, with Meta's reason. The campaigns they belong to.
pub(crate) async fn fail_items<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    moved: &[whatsapp_message::Model],
) -> DomainResult<Vec<Uuid>> {
    let mut campaigns = Vec::new();
    for m in moved {
        let Some(item) = m.campaign_item_id.filter(|_| m.status == "FAILED") else {
            continue;
        };
        let reason = failure_reason(m);
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "UPDATE campaign_items SET status = 'FAILED', last_error = {}, updated_at = {} \
             WHERE id = {} AND tenant_id = {} AND status = 'COMPLETED' RETURNING campaign_id",
            b.bind(reason),
            b.bind(Utc::now()),
            b.bind(item),
            b.bind(tenant)
        );
        if let Some(row) = conn.query_one_raw(b.statement(sql)).await? {
            let id: Uuid = row.try_get("", "campaign_id")?;
            if !campaigns.contains(&id) {
                campaigns.push(id);
            }
        }
    }
    Ok(campaigns)
}

/// A failed message's reason as a queue item shows it.
pub(crate) fn failure_reason(m: &whatsapp_message::Model) -> String {
    match (&m.error_code, &m.error_title) {
        (Some(code), Some(title)) => format!("FAILED (code {code}): {title}"),
        (Some(code), None) => format!("FAILED (code {code})"),
        (None, Some(title)) => format!("FAILED: {title}"),
        (None, None) => "FAILED".to_owned(),
    }
}

/// When the customer's 24-hour window ends (or ended); `None` if they never wrote.
pub async fn window_ends_at<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    customer_id: Uuid,
) -> DomainResult<Option<DateTime<Utc>>> {
    let last = whatsapp_message::Entity::find()
        .filter(whatsapp_message::Column::TenantId.eq(tenant))
        .filter(whatsapp_message::Column::CustomerId.eq(customer_id))
        .filter(whatsapp_message::Column::Direction.eq(Direction::Inbound.as_str()))
        .order_by_desc(whatsapp_message::Column::SentAt)
        .one(conn)
        .await?;
    Ok(last.map(|m| m.sent_at + Duration::hours(WINDOW_HOURS)))
}

/// A free-form reply (MEMBER), only inside the customer's 24-hour window; outside it, a
/// `BAD_USER_INPUT` naming when the window ended (send a template instead).
pub async fn send_text(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    events: &dyn crate::events::EventBus,
    scope: &TenantScope,
    customer_id: Uuid,
    text: &str,
) -> DomainResult<whatsapp_message::Model> {
    scope.require(Role::Member)?;
    // Measured before cleaning, which caps: a long text is refused, never cut.
    let count = text.trim().chars().count();
    let text = printable_text(text.trim());
    if text.is_empty() || count > MAX_TEXT {
        return Err(DomainError::invalid(
            "text",
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    let tenant = scope.tenant_id();
    let customer = customer::Entity::find_by_id(customer_id)
        .filter(customer::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .ok_or_else(|| DomainError::invalid("customerId", "customer not found"))?;
    let conn = load(db, tenant).await?;
    if let Some(reason) = &conn.broken_reason {
        return Err(DomainError::invalid(
            "whatsapp",
            format!("the WhatsApp connection is broken ({reason}); connect again"),
        ));
    }
    let now = Utc::now();
    match window_ends_at(db, tenant, customer_id).await? {
        Some(end) if end > now => {}
        Some(end) => {
            return Err(DomainError::invalid(
                "customerId",
                format!(
                    "the 24-hour window closed at {}; outside it only an approved template can be sent",
                    end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ));
        }
        None => {
            return Err(DomainError::invalid(
                "customerId",
                "the customer has not written on WhatsApp, so no 24-hour window is open; only an approved template can be sent",
            ));
        }
    }
    let message = json!({ "type": "text", "text": { "body": text, "preview_url": false } });
    let out = Outgoing {
        kind: "text",
        body: Some(text),
        template_name: None,
        field: "text",
    };
    deliver(db, wa, events, &conn, &customer, message, out).await
}

/// What a send stores beside Meta's id.
struct Outgoing {
    kind: &'static str,
    body: Option<String>,
    template_name: Option<String>,
    /// The input field a refusal by Meta is reported on.
    field: &'static str,
}

/// Sends `message` to the customer, maps Meta's refusal by its code, stores the message
/// (ACCEPTED) and tells dashboards.
async fn deliver(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    events: &dyn crate::events::EventBus,
    conn: &entity::whatsapp_connection::Model,
    customer: &customer::Model,
    message: Value,
    out: Outgoing,
) -> DomainResult<whatsapp_message::Model> {
    let tenant = conn.tenant_id;
    let token = access_token(wa, conn)?;
    let to: String = customer
        .phone_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let wamid = match send(wa, &conn.phone_number_id, &token, &to, message).await {
        Ok(id) => id,
        Err(MetaError::WindowClosed { message }) => {
            return Err(DomainError::invalid(
                "customerId",
                format!("Meta says the 24-hour window is closed: {message}"),
            ));
        }
        Err(MetaError::Auth { message, .. }) => {
            mark_broken(db, tenant, &message).await?;
            return Err(DomainError::invalid(
                "whatsapp",
                format!("Meta refused the access token: {message}; connect again"),
            ));
        }
        Err(e @ MetaError::RateLimited { .. }) => {
            return Err(DomainError::Conflict {
                field: None,
                message: format!("{e}; try again shortly"),
            });
        }
        Err(e) => return Err(DomainError::invalid(out.field, e.to_string())),
    };
    let sent = Sent {
        tenant,
        customer_id: Some(customer.id),
        wamid,
        kind: out.kind,
        body: out.body,
        template_name: out.template_name,
        campaign_item_id: None,
    };
    let model = record_sent(db, sent, Utc::now()).await?;
    publish(events, std::slice::from_ref(&model)).await;
    Ok(model)
}

/// A message Meta accepted, to store.
pub(crate) struct Sent {
    pub tenant: Uuid,
    pub customer_id: Option<Uuid>,
    pub wamid: String,
    pub kind: &'static str,
    pub body: Option<String>,
    pub template_name: Option<String>,
    pub campaign_item_id: Option<Uuid>,
}

/// Stores a message Meta accepted (ACCEPTED). A status that beat the answer here left a
/// row with only its status: what was sent is filled in, the status is kept.
pub(crate) async fn record_sent<C: ConnectionTrait>(
    conn: &C,
    sent: Sent,
    now: DateTime<Utc>,
) -> DomainResult<whatsapp_message::Model> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "INSERT INTO whatsapp_messages (id, tenant_id, customer_id, direction, wamid, kind, body, payload, \
         status, status_rank, error_code, error_title, template_name, campaign_item_id, sent_at, created_at, updated_at) \
         VALUES {} ON CONFLICT (tenant_id, wamid) DO UPDATE SET body = excluded.body, kind = excluded.kind, \
         customer_id = COALESCE(excluded.customer_id, whatsapp_messages.customer_id), \
         template_name = excluded.template_name, campaign_item_id = excluded.campaign_item_id, \
         sent_at = excluded.sent_at RETURNING *",
        b.row([
            Uuid::now_v7().into(),
            sent.tenant.into(),
            sent.customer_id.into(),
            Direction::Outbound.as_str().into(),
            sent.wamid.into(),
            sent.kind.into(),
            sent.body.into(),
            Option::<Value>::None.into(),
            MessageStatus::Accepted.as_str().into(),
            MessageStatus::Accepted.rank().into(),
            Option::<i32>::None.into(),
            Option::<String>::None.into(),
            sent.template_name.into(),
            sent.campaign_item_id.into(),
            now.into(),
            now.into(),
            now.into(),
        ])
    );
    whatsapp_message::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(conn)
        .await?
        .ok_or_else(|| DomainError::Internal("the message was not stored".into()))
}

/// Most parameters a template send may carry, and the longest one.
const MAX_PARAMETERS: usize = 100;
const MAX_PARAMETER: usize = 1024;

/// A template to send: its name and language, and its parameters in order.
#[derive(Debug, Clone)]
pub struct TemplateSend {
    pub customer_id: Uuid,
    pub name: String,
    pub language: String,
    pub parameters: Vec<String>,
}

/// An approved template (MEMBER), inside or outside the 24-hour window, with exactly the
/// parameters it names. Customers marked DO_NOT_CALL or on the do-not-call list are not
/// messaged either.
pub async fn send_template(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    events: &dyn crate::events::EventBus,
    scope: &TenantScope,
    send: &TemplateSend,
) -> DomainResult<whatsapp_message::Model> {
    let (customer_id, name, language, parameters) = (
        send.customer_id,
        send.name.as_str(),
        send.language.as_str(),
        send.parameters.as_slice(),
    );
    scope.require(Role::Member)?;
    let tenant = scope.tenant_id();
    if parameters.len() > MAX_PARAMETERS
        || parameters
            .iter()
            .any(|p| p.trim().is_empty() || p.chars().count() > MAX_PARAMETER)
    {
        return Err(DomainError::invalid(
            "parameters",
            format!("at most {MAX_PARAMETERS} parameters of 1 to {MAX_PARAMETER} characters"),
        ));
    }
    let customer = customer::Entity::find_by_id(customer_id)
        .filter(customer::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .ok_or_else(|| DomainError::invalid("customerId", "customer not found"))?;
    if customer.status == crate::types::LeadStatus::DoNotCall
        || crate::dnc::listed(db, tenant, &customer.phone_number).await?
    {
        return Err(DomainError::invalid(
            "customerId",
            "the customer asked not to be contacted",
        ));
    }
    let conn = load(db, tenant).await?;
    if let Some(reason) = &conn.broken_reason {
        return Err(DomainError::invalid(
            "whatsapp",
            format!("the WhatsApp connection is broken ({reason}); connect again"),
        ));
    }
    let template = super::templates::approved(db, tenant, name, language, "name").await?;
    if parameters.len() != template.parameter_count as usize {
        return Err(DomainError::invalid(
            "parameters",
            format!(
                "the template takes {} parameters, {} were given",
                template.parameter_count,
                parameters.len()
            ),
        ));
    }
    let out = Outgoing {
        kind: "template",
        body: None,
        template_name: Some(template.name.clone()),
        field: "name",
    };
    deliver(
        db,
        wa,
        events,
        &conn,
        &customer,
        template_message(&template, parameters),
        out,
    )
    .await
}

/// A template message with its body parameters, in order.
pub(crate) fn template_message(
    template: &entity::whatsapp_template::Model,
    parameters: &[String],
) -> Value {
    let mut body = json!({ "name": template.name, "language": { "code": template.language } });
    if !parameters.is_empty() {
        let values: Vec<Value> = parameters
            .iter()
            .map(|p| json!({ "type": "text", "text": printable_text(p.trim()) }))
            .collect();
        body["components"] = json!([{ "type": "body", "parameters": values }]);
    }
    json!({ "type": "template", "template": body })
}

/// Marks the connection broken and tells integrators (`whatsapp.connection_failing`),
/// once per outage.
pub(crate) async fn mark_broken(
    db: &DatabaseConnection,
    tenant: Uuid,
    reason: &str,
) -> DomainResult<()> {
    let txn = crate::db::begin_write(db).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE whatsapp_connections SET broken_reason = {}, broken_at = {} WHERE tenant_id = {} AND broken_at IS NULL",
        b.bind(printable(reason, 500)),
        b.bind(Utc::now()),
        b.bind(tenant)
    );
    let moved = txn.execute_raw(b.statement(sql)).await?.rows_affected() > 0;
    if moved {
        crate::outbound::record_events(
            &txn,
            vec![crate::outbound::payloads::tenant_event(
                tenant,
                crate::outbound::EventType::WhatsAppConnectionFailing,
                json!({ "reason": printable(reason, 500) }),
            )],
        )
        .await?;
    }
    txn.commit().await?;
    if moved {
        crate::jobs::wake(crate::jobs::Lane::Webhooks);
        tracing::warn!(tenant.id = %tenant, reason, "WhatsApp connection broken");
    }
    Ok(())
}

/// Tells dashboards of new or changed messages.
pub(crate) async fn publish(
    events: &dyn crate::events::EventBus,
    messages: &[whatsapp_message::Model],
) {
    for m in messages {
        if let Err(e) = events.publish(Event::whatsapp_message(m.clone())).await {
            tracing::warn!(error = %e, "could not publish a WhatsApp message");
        }
    }
}

/// The customer's messages, newest first (at most `limit`).
pub async fn messages_of(
    db: &DatabaseConnection,
    scope: &TenantScope,
    customer_id: Uuid,
    limit: u64,
) -> DomainResult<Vec<whatsapp_message::Model>> {
    Ok(whatsapp_message::Entity::find()
        .filter(whatsapp_message::Column::TenantId.eq(scope.tenant_id()))
        .filter(whatsapp_message::Column::CustomerId.eq(customer_id))
        .order_by_desc(whatsapp_message::Column::SentAt)
        .limit(limit)
        .all(db)
        .await?)
}
