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
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "UPDATE whatsapp_messages SET status = {}, status_rank = {}, error_code = COALESCE({}, error_code), \
             error_title = COALESCE({}, error_title), updated_at = {} \
             WHERE tenant_id = {} AND wamid = {} AND direction = 'OUTBOUND' AND status_rank < {} RETURNING *",
            b.bind(status.as_str()),
            b.bind(status.rank()),
            b.bind(code),
            b.bind(title),
            b.bind(Utc::now()),
            b.bind(tenant),
            b.bind(wamid),
            b.bind(status.rank()),
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
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "INSERT INTO whatsapp_messages (id, tenant_id, customer_id, direction, wamid, kind, body, payload, \
         status, status_rank, error_code, error_title, template_name, sent_at, created_at, updated_at) \
         VALUES {} ON CONFLICT (tenant_id, wamid) DO UPDATE SET body = excluded.body RETURNING *",
        b.row([
            Uuid::now_v7().into(),
            tenant.into(),
            Some(customer.id).into(),
            Direction::Outbound.as_str().into(),
            wamid.into(),
            out.kind.into(),
            out.body.into(),
            Option::<Value>::None.into(),
            MessageStatus::Accepted.as_str().into(),
            MessageStatus::Accepted.rank().into(),
            Option::<i32>::None.into(),
            Option::<String>::None.into(),
            out.template_name.into(),
            now.into(),
            now.into(),
            now.into(),
        ])
    );
    let model = whatsapp_message::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Internal("the message was not stored".into()))?;
    publish(events, std::slice::from_ref(&model)).await;
    Ok(model)
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
    let template = entity::whatsapp_template::Entity::find()
        .filter(entity::whatsapp_template::Column::TenantId.eq(tenant))
        .filter(entity::whatsapp_template::Column::Name.eq(name))
        .filter(entity::whatsapp_template::Column::Language.eq(language))
        .one(db)
        .await?
        .ok_or_else(|| {
            DomainError::invalid(
                "name",
                "no such template in this language (syncWhatsAppTemplates reads them again)",
            )
        })?;
    if template.status != "APPROVED" {
        return Err(DomainError::invalid(
            "name",
            format!(
                "the template is {}; only APPROVED templates can be sent",
                template.status
            ),
        ));
    }
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
    let mut body = json!({ "name": template.name, "language": { "code": template.language } });
    if !parameters.is_empty() {
        let values: Vec<Value> = parameters
            .iter()
            .map(|p| json!({ "type": "text", "text": printable_text(p.trim()) }))
            .collect();
        body["components"] = json!([{ "type": "body", "parameters": values }]);
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
        json!({ "type": "template", "template": body }),
        out,
    )
    .await
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
