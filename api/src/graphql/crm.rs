//! The CRM connection (Twenty) in the schema: connect, mapping and overrides, runs.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::crm;

use super::context::{db, scope, services};
use super::enums::{CrmProvider, CrmSyncDirection};
use super::error::GqlResultExt;
use super::sync::SyncRun;

/// A synced field.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CrmField {
    Name,
    Email,
    Phone,
    LeadStatus,
    LeadScore,
    Segment,
    LastCallSummary,
}

impl From<CrmField> for crm::Field {
    fn from(f: CrmField) -> Self {
        match f {
            CrmField::Name => crm::Field::Name,
            CrmField::Email => crm::Field::Email,
            CrmField::Phone => crm::Field::Phone,
            CrmField::LeadStatus => crm::Field::LeadStatus,
            CrmField::LeadScore => crm::Field::LeadScore,
            CrmField::Segment => crm::Field::Segment,
            CrmField::LastCallSummary => crm::Field::LastCallSummary,
        }
    }
}

impl From<crm::Field> for CrmField {
    fn from(f: crm::Field) -> Self {
        match f {
            crm::Field::Name => CrmField::Name,
            crm::Field::Email => CrmField::Email,
            crm::Field::Phone => CrmField::Phone,
            crm::Field::LeadStatus => CrmField::LeadStatus,
            crm::Field::LeadScore => CrmField::LeadScore,
            crm::Field::Segment => CrmField::Segment,
            crm::Field::LastCallSummary => CrmField::LastCallSummary,
        }
    }
}

/// The side whose value stands when both changed a field.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CrmSide {
    /// "Twenty wins".
    Twenty,
    /// "Switchboard wins".
    Switchboard,
}

/// Where Switchboard's computed values live in Twenty: the API names of the tenant's
/// custom person fields (unset: not synced).
#[derive(SimpleObject, InputObject, Clone, Default)]
#[graphql(input_name = "CrmFieldMappingInput")]
pub struct CrmFieldMapping {
    /// A text or select field for the lead status (two-way: NEW, CONTACTED, ...).
    pub lead_status: Option<String>,
    /// A number field for the lead score (0 to 100).
    pub lead_score: Option<String>,
    /// A text field for the segment.
    pub segment: Option<String>,
    /// A text field for the newest call's summary.
    pub last_call_summary: Option<String>,
}

/// A conflict rule for one two-way field.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "CrmFieldOverrideInput")]
pub struct CrmFieldOverride {
    /// NAME, EMAIL, PHONE or LEAD_STATUS.
    pub field: CrmField,
    pub winner: CrmSide,
}

fn mapping_in(m: CrmFieldMapping) -> crm::FieldMapping {
    crm::FieldMapping {
        lead_status: m.lead_status,
        lead_score: m.lead_score,
        segment: m.segment,
        last_call_summary: m.last_call_summary,
    }
}

fn overrides_in(list: Vec<CrmFieldOverride>) -> async_graphql::Result<crm::Overrides> {
    if list.len() > 20 {
        return Err(domain::error::DomainError::invalid(
            "overrides",
            "at most 20 overrides",
        ))
        .gql();
    }
    Ok(crm::Overrides(
        list.into_iter()
            .map(|o| {
                (
                    o.field.into(),
                    match o.winner {
                        CrmSide::Twenty => crm::Side::Crm,
                        CrmSide::Switchboard => crm::Side::Switchboard,
                    },
                )
            })
            .collect(),
    ))
}

/// The tenant's CRM (ADMIN). The API key and webhook secret are never shown.
#[derive(SimpleObject)]
pub struct CrmConnection {
    pub provider: CrmProvider,
    pub base_url: String,
    /// Paste into Twenty (Settings, Webhooks) with the webhook secret given to
    /// `connectTwenty`. A credential: disconnecting revokes it.
    pub webhook_url: String,
    pub field_mapping: CrmFieldMapping,
    /// Fields whose conflicts one side always wins; the others go to the later change.
    pub overrides: Vec<CrmFieldOverride>,
    /// The newest CRM change a pull has applied (the next pull starts there).
    pub pull_cursor: Option<DateTime<Utc>>,
    pub last_pull_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    /// Since when every request to the CRM has failed; null while it answers.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Customers linked to a CRM person.
    pub linked_customers: u64,
    /// Customers changed here and not yet pushed.
    pub pending_pushes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crm::CrmConnection> for CrmConnection {
    fn from(c: crm::CrmConnection) -> Self {
        CrmConnection {
            provider: c.provider.into(),
            base_url: c.base_url,
            webhook_url: c.webhook_url,
            field_mapping: CrmFieldMapping {
                lead_status: c.field_mapping.lead_status,
                lead_score: c.field_mapping.lead_score,
                segment: c.field_mapping.segment,
                last_call_summary: c.field_mapping.last_call_summary,
            },
            overrides: c
                .overrides
                .0
                .into_iter()
                .map(|(f, s)| CrmFieldOverride {
                    field: f.into(),
                    winner: match s {
                        crm::Side::Crm => CrmSide::Twenty,
                        crm::Side::Switchboard => CrmSide::Switchboard,
                    },
                })
                .collect(),
            pull_cursor: c.pull_cursor,
            last_pull_at: c.last_pull_at,
            last_push_at: c.last_push_at,
            failing_since: c.failing_since,
            last_error: c.last_error,
            linked_customers: c.linked_customers,
            pending_pushes: c.pending_pushes,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A Twenty workspace to sync customers with.
#[derive(InputObject)]
pub struct ConnectTwentyInput {
    /// `https://api.twenty.com` or the self-hosted workspace's address.
    pub base_url: String,
    /// An API key made in Twenty (Settings, APIs).
    pub api_key: String,
    /// The secret set on the Twenty webhook that points at `webhookUrl`.
    pub webhook_secret: String,
    pub field_mapping: Option<CrmFieldMapping>,
    pub overrides: Option<Vec<CrmFieldOverride>>,
}

/// What to change on the connection (what is not given stays).
#[derive(InputObject)]
pub struct UpdateCrmConnectionInput {
    pub field_mapping: Option<CrmFieldMapping>,
    /// Replaces the list.
    pub overrides: Option<Vec<CrmFieldOverride>>,
}

#[derive(Default)]
pub struct CrmQuery;

#[Object]
impl CrmQuery {
    /// The tenant's CRM connection, if any (ADMIN).
    async fn crm_connection(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<CrmConnection>> {
        crm::get(db(ctx)?, services(ctx)?.crm(), scope(ctx)?)
            .await
            .map(|c| c.map(Into::into))
            .gql()
    }
}

#[derive(Default)]
pub struct CrmMutation;

#[Object]
impl CrmMutation {
    /// Connects the tenant's Twenty workspace (ADMIN) after one read proves the key, and
    /// starts a first sync. Connecting again replaces the key, secret and mapping.
    async fn connect_twenty(
        &self,
        ctx: &Context<'_>,
        input: ConnectTwentyInput,
    ) -> async_graphql::Result<CrmConnection> {
        let overrides = input.overrides.map(overrides_in).transpose()?;
        crm::connect(
            db(ctx)?,
            services(ctx)?.crm(),
            scope(ctx)?,
            crm::ConnectTwenty {
                base_url: input.base_url,
                api_key: input.api_key,
                webhook_secret: input.webhook_secret,
                field_mapping: input.field_mapping.map(mapping_in),
                overrides,
            },
        )
        .await
        .map(Into::into)
        .gql()
    }

    /// Changes the field mapping or the conflict overrides (ADMIN).
    async fn update_crm_connection(
        &self,
        ctx: &Context<'_>,
        input: UpdateCrmConnectionInput,
    ) -> async_graphql::Result<CrmConnection> {
        let overrides = input.overrides.map(overrides_in).transpose()?;
        crm::update(
            db(ctx)?,
            services(ctx)?.crm(),
            scope(ctx)?,
            crm::UpdateCrm {
                field_mapping: input.field_mapping.map(mapping_in),
                overrides,
            },
        )
        .await
        .map(Into::into)
        .gql()
    }

    /// Disconnects the CRM (ADMIN): its webhook URL stops working at once; customers stay.
    async fn disconnect_crm(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        crm::disconnect(db(ctx)?, scope(ctx)?).await.gql()
    }

    /// Runs a CRM sync now (MEMBER) and returns it at once (RUNNING); follow it with
    /// `syncRun` or `syncRunUpdated`. A CRM sync already running is returned instead.
    async fn trigger_crm_sync(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CrmSyncDirection::Both")] direction: CrmSyncDirection,
    ) -> async_graphql::Result<SyncRun> {
        crm::trigger(db(ctx)?, scope(ctx)?, direction.into())
            .await
            .map(SyncRun)
            .gql()
    }
}
