//! The account's message templates: synced from Meta (on connect and on request) and kept
//! current by `message_template_status_update` webhooks. Only APPROVED ones can be sent.

use chrono::Utc;
use entity::whatsapp_template;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;
use uuid::Uuid;

use super::WhatsApp;
use super::cloud::{MetaError, TemplateDto, list_templates, printable};
use super::connection::{access_token, load};
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::tenancy::TenantScope;
use crate::types::Role;

/// Templates kept per tenant (Meta allows a few hundred per account).
const MAX_TEMPLATES: usize = 5000;

/// `{{1}}`, `{{2}}`... in a template's texts: how many parameters a send must give.
fn parameter_count(components: Option<&Value>) -> i32 {
    let mut highest = 0;
    let mut count = 0;
    for c in components.and_then(Value::as_array).into_iter().flatten() {
        let Some(text) = c["text"].as_str() else {
            continue;
        };
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find("}}") else { break };
            if let Ok(n) = rest[..end].trim().parse::<i32>() {
                highest = highest.max(n);
            }
            count += 1;
            rest = &rest[end + 2..];
        }
    }
    if highest > 0 {
        highest.min(100)
    } else {
        count.min(100)
    }
}

/// Writes the listed templates (one statement per template; a sync is rare).
pub(crate) async fn store<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    listed: &[TemplateDto],
) -> DomainResult<()> {
    let now = Utc::now();
    for t in listed.iter().take(MAX_TEMPLATES) {
        let name = printable(&t.name, 512);
        let language = printable(&t.language, 20);
        if name.is_empty() || language.is_empty() {
            continue;
        }
        let components = t
            .components
            .clone()
            .filter(|c| c.to_string().len() <= 64 * 1024);
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "INSERT INTO whatsapp_templates (id, tenant_id, meta_id, name, language, status, category, \
             parameter_count, components, rejected_reason, updated_at) VALUES {} \
             ON CONFLICT (tenant_id, name, language) DO UPDATE SET meta_id = excluded.meta_id, \
             status = excluded.status, category = excluded.category, parameter_count = excluded.parameter_count, \
             components = excluded.components, rejected_reason = excluded.rejected_reason, updated_at = excluded.updated_at",
            b.row([
                Uuid::now_v7().into(),
                tenant.into(),
                t.id.as_deref().map(|s| printable(s, 64)).into(),
                name.into(),
                language.into(),
                printable(&t.status, 40).to_uppercase().into(),
                t.category.as_deref().map(|s| printable(s, 40)).into(),
                parameter_count(components.as_ref()).into(),
                components.into(),
                t.rejected_reason
                    .as_deref()
                    .map(|s| printable(s, 500))
                    .into(),
                now.into(),
            ])
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// Reads the account's templates from Meta again (MEMBER).
pub async fn sync(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    scope: &TenantScope,
) -> DomainResult<Vec<whatsapp_template::Model>> {
    scope.require(Role::Member)?;
    let conn = load(db, scope.tenant_id()).await?;
    let token = access_token(wa, &conn)?;
    let listed = list_templates(wa, &conn.business_account_id, &token)
        .await
        .map_err(|e| match e {
            MetaError::Auth { message, .. } => DomainError::invalid(
                "accessToken",
                format!("Meta refused the token: {message}; connect again"),
            ),
            other => DomainError::invalid("whatsapp", other.to_string()),
        })?;
    let txn = crate::db::begin_write(db).await?;
    store(&txn, scope.tenant_id(), &listed).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE whatsapp_connections SET templates_synced_at = {} WHERE tenant_id = {}",
        b.bind(Utc::now()),
        b.bind(scope.tenant_id())
    );
    txn.execute_raw(b.statement(sql)).await?;
    txn.commit().await?;
    list(db, scope).await
}

/// The tenant's templates, by name and language.
pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<Vec<whatsapp_template::Model>> {
    Ok(whatsapp_template::Entity::find()
        .filter(whatsapp_template::Column::TenantId.eq(scope.tenant_id()))
        .order_by_asc(whatsapp_template::Column::Name)
        .order_by_asc(whatsapp_template::Column::Language)
        .all(db)
        .await?)
}

/// A `message_template_status_update` event: the template's new status (a template not
/// synced yet is recorded with what the event says).
pub(crate) async fn status_update<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    value: &Value,
) -> DomainResult<bool> {
    let (Some(name), Some(language), Some(event)) = (
        value["message_template_name"].as_str(),
        value["message_template_language"].as_str(),
        value["event"].as_str(),
    ) else {
        return Ok(false);
    };
    let reason = value["reason"]
        .as_str()
        .filter(|r| *r != "NONE")
        .map(|r| printable(r, 500));
    let dto = TemplateDto {
        id: value["message_template_id"]
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| value["message_template_id"].as_str().map(str::to_owned)),
        name: name.to_owned(),
        language: language.to_owned(),
        status: event.to_owned(),
        category: value["message_template_category"]
            .as_str()
            .map(str::to_owned),
        components: None,
        rejected_reason: reason,
    };
    // A status event carries no components: keep the ones synced.
    let existing = whatsapp_template::Entity::find()
        .filter(whatsapp_template::Column::TenantId.eq(tenant))
        .filter(whatsapp_template::Column::Name.eq(printable(name, 512)))
        .filter(whatsapp_template::Column::Language.eq(printable(language, 20)))
        .one(conn)
        .await?;
    let dto = TemplateDto {
        components: existing.and_then(|e| e.components),
        ..dto
    };
    store(conn, tenant, std::slice::from_ref(&dto)).await?;
    Ok(true)
}

/// The tenant's template of this name and language, if it may be sent (APPROVED); a
/// refusal saying why otherwise, reported on `field`.
pub(crate) async fn approved<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    name: &str,
    language: &str,
    field: &'static str,
) -> DomainResult<whatsapp_template::Model> {
    let template = whatsapp_template::Entity::find()
        .filter(whatsapp_template::Column::TenantId.eq(tenant))
        .filter(whatsapp_template::Column::Name.eq(name))
        .filter(whatsapp_template::Column::Language.eq(language))
        .one(conn)
        .await?
        .ok_or_else(|| {
            DomainError::invalid(
                field,
                "no such template in this language (syncWhatsAppTemplates reads them again)",
            )
        })?;
    if template.status != "APPROVED" {
        return Err(DomainError::invalid(
            field,
            format!(
                "the template is {}; only APPROVED templates can be sent",
                template.status
            ),
        ));
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_counted_from_placeholders() {
        let c = json!([
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
            {"type": "BODY", "text": "Your call is on {{2}} at {{3}}."},
            {"type": "FOOTER", "text": "Reply STOP"}
        ]);
        assert_eq!(parameter_count(Some(&c)), 3);
        assert_eq!(parameter_count(None), 0);
        assert_eq!(
            parameter_count(Some(&json!([{"text": "{{ 1 }} and {{x"}]))),
            1
        );
    }
}
