//! Customers (leads) in GraphQL, and the do-not-call list.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use domain::pagination::PageRequest;
use domain::{customers, dnc};

use super::context::{db, scope};
use super::enums::LeadStatus;
use super::error::{GqlResultExt, parse_id};
use super::input::patch;
use super::plain::Plain;
use super::types::{Customer, CustomerConnection};

/// Narrows `customers`.
#[derive(InputObject, Default)]
pub struct CustomerFilter {
    /// Only customers with this lead status.
    pub status: Option<LeadStatus>,
    /// Case-insensitive part of the name, or a phone number in any format.
    pub search: Option<String>,
    /// Only customers with this tag (case-insensitive).
    pub tag: Option<String>,
}

/// A new customer.
#[derive(InputObject)]
pub struct CreateCustomerInput {
    /// Any common format; read in the tenant's default region and stored as E.164.
    pub phone_number: String,
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Lead status (default NEW).
    pub status: Option<LeadStatus>,
    /// Tags; trimmed, lower-cased, deduplicated.
    #[graphql(default)]
    pub tags: Vec<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// Segment label.
    pub segment: Option<String>,
    /// Where the lead came from (default API).
    pub source: Option<String>,
    /// 0 to 100.
    pub lead_score: Option<f64>,
}

/// Changes to a customer; omitted fields stay as they are, null clears.
#[derive(InputObject)]
pub struct UpdateCustomerInput {
    /// New number, any format; a number another customer has is a CONFLICT.
    pub phone_number: Option<String>,
    /// Full name; null clears it.
    pub name: MaybeUndefined<String>,
    /// Email; null clears it.
    pub email: MaybeUndefined<String>,
    /// New lead status.
    pub status: Option<LeadStatus>,
    /// Replaces all tags.
    pub tags: Option<Vec<String>>,
    /// Notes; null clears them.
    pub notes: MaybeUndefined<String>,
    /// Segment; null clears it.
    pub segment: MaybeUndefined<String>,
    /// 0 to 100; null clears it.
    pub lead_score: MaybeUndefined<f64>,
}

/// Customers's part of the query root.
#[derive(Default)]
pub struct CustomersQuery;

#[Object]
impl CustomersQuery {
    /// Customers, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CustomerFilter>,
    ) -> async_graphql::Result<CustomerConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let f = filter.unwrap_or_default();
        let filter = customers::CustomerFilter {
            status: f.status.map(Into::into),
            search: f.search,
            tag: f.tag.map(|t| t.trim().to_lowercase()),
        };
        CustomerConnection::load(ctx, filter, page).await
    }

    /// One customer, or null if it does not exist in this tenant.
    async fn customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Plain<Customer>>> {
        let id = parse_id("id", &id)?;
        Ok(customers::find(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(|c| Plain(Customer::new(c))))
    }

    /// The customer with this number, in any format (read in the tenant's default region).
    async fn customer_by_phone(
        &self,
        ctx: &Context<'_>,
        phone: String,
    ) -> async_graphql::Result<Option<Customer>> {
        Ok(customers::by_phone(db(ctx)?, scope(ctx)?, &phone)
            .await
            .gql()?
            .map(Customer::new))
    }
}

/// Customers's part of the mutation root.
#[derive(Default)]
pub struct CustomersMutation;

#[Object]
impl CustomersMutation {
    /// Adds a customer. A number already in the CRM (in any format) is a CONFLICT.
    async fn create_customer(
        &self,
        ctx: &Context<'_>,
        input: CreateCustomerInput,
    ) -> async_graphql::Result<Customer> {
        let new = customers::NewCustomer {
            phone_number: input.phone_number,
            name: input.name,
            email: input.email,
            status: input.status.map(Into::into),
            tags: input.tags,
            notes: input.notes,
            segment: input.segment,
            source: input.source,
            lead_score: input.lead_score,
        };
        customers::create(db(ctx)?, scope(ctx)?, new)
            .await
            .map(Customer::new)
            .gql()
    }

    /// Changes a customer; omitted fields stay as they are, null clears.
    async fn update_customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCustomerInput,
    ) -> async_graphql::Result<Customer> {
        let id = parse_id("id", &id)?;
        let p = customers::CustomerPatch {
            phone_number: input.phone_number,
            name: patch(input.name),
            email: patch(input.email),
            status: input.status.map(Into::into),
            tags: input.tags,
            notes: patch(input.notes),
            segment: patch(input.segment),
            lead_score: patch(input.lead_score),
        };
        customers::update(db(ctx)?, scope(ctx)?, id, p)
            .await
            .map(Customer::new)
            .gql()
    }

    /// Deletes a customer; their calls are kept without a customer.
    async fn delete_customer(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = parse_id("id", &id)?;
        customers::delete(db(ctx)?, scope(ctx)?, id).await.gql()
    }

    /// Moves the duplicate's calls and interactions to the primary, fills the primary's empty
    /// fields from it, and deletes the duplicate.
    async fn merge_customers(
        &self,
        ctx: &Context<'_>,
        primary_id: ID,
        duplicate_id: ID,
    ) -> async_graphql::Result<Customer> {
        let primary = parse_id("primaryId", &primary_id)?;
        let duplicate = parse_id("duplicateId", &duplicate_id)?;
        customers::merge(db(ctx)?, scope(ctx)?, primary, duplicate)
            .await
            .map(Customer::new)
            .gql()
    }

    /// Puts a number on the tenant's do-not-call list; calls to it are refused.
    async fn add_do_not_call(
        &self,
        ctx: &Context<'_>,
        phone_number: String,
        reason: Option<String>,
    ) -> async_graphql::Result<bool> {
        dnc::add(db(ctx)?, scope(ctx)?, &phone_number, reason)
            .await
            .gql()
    }

    /// Takes a number off the do-not-call list; false when it was not on it.
    async fn remove_do_not_call(
        &self,
        ctx: &Context<'_>,
        phone_number: String,
    ) -> async_graphql::Result<bool> {
        dnc::remove(db(ctx)?, scope(ctx)?, &phone_number)
            .await
            .gql()
    }
}
