//! SeaORM queries for customers. Every function filters on the caller's tenant.

use entity::{customer, customer_tag};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, Select,
};
use uuid::Uuid;

use super::service::CustomerFilter;
use crate::db::by_position;
use crate::error::{DomainError, DomainResult};
use crate::pagination::{self, Page, PageRequest};
use crate::phone::PhoneNumber;
use crate::tenancy::TenantScope;

fn scoped(scope: &TenantScope) -> Select<customer::Entity> {
    customer::Entity::find().filter(customer::Column::TenantId.eq(scope.tenant_id()))
}

/// `%` and `_` in user text are literal, not wildcards.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn filtered(scope: &TenantScope, filter: &CustomerFilter) -> Select<customer::Entity> {
    let mut q = scoped(scope);
    if let Some(status) = filter.status {
        q = q.filter(customer::Column::Status.eq(status));
    }
    if let Some(tag) = &filter.tag {
        q = q.filter(
            customer::Column::Id.in_subquery(
                Query::select()
                    .column(customer_tag::Column::CustomerId)
                    .from(customer_tag::Entity)
                    .and_where(customer_tag::Column::TenantId.eq(scope.tenant_id()))
                    .and_where(customer_tag::Column::Tag.eq(tag.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let mut any = Condition::any().add(
            Expr::expr(Func::lower(Expr::col(customer::Column::Name)))
                .like(LikeExpr::new(like_pattern(&search.to_lowercase())).escape('\\')),
        );
        // A search that reads as a phone number matches it in any format.
        if let Ok(phone) = PhoneNumber::parse(search, scope.region()) {
            any = any.add(customer::Column::PhoneNumber.eq(phone.as_str()));
        }
        let digits: String = search.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 3 {
            any = any.add(customer::Column::PhoneNumber.like(like_pattern(&digits)));
        }
        q = q.filter(any);
    }
    q
}

/// Longest `search` accepted: names and phone numbers are far shorter, and a long pattern
/// costs the database on every row.
pub const MAX_SEARCH_CHARS: usize = 200;

fn check_filter(filter: &CustomerFilter) -> DomainResult<()> {
    for (field, value) in [("search", &filter.search), ("tag", &filter.tag)] {
        if value
            .as_deref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: &CustomerFilter,
    page: PageRequest,
) -> DomainResult<Page<customer::Model>> {
    check_filter(filter)?;
    pagination::fetch_by_position(db, filtered(scope, filter), customer::Column::Id, page).await
}

pub async fn count(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: &CustomerFilter,
) -> DomainResult<u64> {
    check_filter(filter)?;
    Ok(filtered(scope, filter).count(db).await?)
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<customer::Model>> {
    Ok(by_position::one(conn, scoped(scope).filter(customer::Column::Id.eq(id))).await?)
}

pub async fn find_by_phone<C: ConnectionTrait>(
    conn: &C,
    scope: &TenantScope,
    phone: &PhoneNumber,
) -> DomainResult<Option<customer::Model>> {
    Ok(scoped(scope)
        .filter(customer::Column::PhoneNumber.eq(phone.as_str()))
        .one(conn)
        .await?)
}

/// Batch lookup for DataLoaders: one statement for any number of ids.
pub async fn by_ids(
    db: &DatabaseConnection,
    scope: &TenantScope,
    ids: &[Uuid],
) -> DomainResult<Vec<customer::Model>> {
    Ok(scoped(scope)
        .filter(customer::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// Replaces the tag index rows of one customer (the JSON column holds the same list).
pub async fn replace_tags<C: ConnectionTrait>(
    conn: &C,
    scope: &TenantScope,
    customer_id: Uuid,
    tags: &[String],
) -> DomainResult<()> {
    customer_tag::Entity::delete_many()
        .filter(customer_tag::Column::TenantId.eq(scope.tenant_id()))
        .filter(customer_tag::Column::CustomerId.eq(customer_id))
        .exec(conn)
        .await?;
    if tags.is_empty() {
        return Ok(());
    }
    let rows = tags.iter().map(|tag| customer_tag::ActiveModel {
        tenant_id: sea_orm::Set(scope.tenant_id()),
        customer_id: sea_orm::Set(customer_id),
        tag: sea_orm::Set(tag.clone()),
    });
    customer_tag::Entity::insert_many(rows).exec(conn).await?;
    Ok(())
}
