//! One Relay connection type for every list: a page of rows, how to turn a row into its
//! node, what to load for the whole page before the nodes resolve, and how to count all
//! pages. Each list names its GraphQL types once with [`connection_object!`].

use std::future::Future;

use async_graphql::{Context, OutputType, SimpleObject};
use domain::pagination::{Page, encode_cursor};
use uuid::Uuid;

use super::plain::{self, Plain, PlainFields};
use super::types::{Call, Customer, PageInfo, page_info};

/// What a list contributes to its connection.
pub trait Listing: Send + Sync + 'static {
    type Row: Send + Sync;
    type Node: PlainFields;

    fn id(row: &Self::Row) -> Uuid;
    fn node(&self, row: &Self::Row) -> Self::Node;

    /// Loads, in one go, what the page's nodes will ask for (so nested lists cost one
    /// statement per relation, not one per row).
    fn prefetch(
        &self,
        _ctx: &Context<'_>,
        _rows: &[Self::Row],
    ) -> impl Future<Output = async_graphql::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Rows over all pages, only when asked for.
    fn total(&self, ctx: &Context<'_>) -> impl Future<Output = async_graphql::Result<u64>> + Send;
}

/// A page of a list.
pub struct Connection<L: Listing> {
    pub page: Page<L::Row>,
    pub listing: L,
}

impl<L: Listing> Connection<L> {
    pub fn new(page: Page<L::Row>, listing: L) -> Self {
        Connection { page, listing }
    }

    pub async fn edges_of(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<Plain<Edge<L::Node>>>> {
        self.listing.prefetch(ctx, &self.page.items).await?;
        Ok(self
            .page
            .items
            .iter()
            .map(|row| {
                Plain(Edge {
                    cursor: encode_cursor(L::id(row)),
                    node: self.listing.node(row),
                })
            })
            .collect())
    }

    pub fn info(&self) -> PageInfo {
        page_info(&self.page, L::id)
    }
}

/// An edge: a row and its cursor.
#[derive(SimpleObject)]
#[graphql(concrete(name = "CallEdge", params(Call)))]
#[graphql(concrete(name = "CustomerEdge", params(Customer)))]
#[graphql(concrete(name = "SyncRunEdge", params(super::sync::SyncRun)))]
#[graphql(concrete(name = "CampaignEdge", params(super::campaigns::Campaign)))]
#[graphql(concrete(name = "CreditEntryEdge", params(super::credits::CreditEntry)))]
#[graphql(concrete(name = "QueueItemEdge", params(super::campaigns::QueueItem)))]
#[graphql(concrete(
    name = "WebhookDeliveryEdge",
    params(super::webhook_endpoints::WebhookDelivery)
))]
pub struct Edge<N: OutputType> {
    /// Position of this row, for `after`.
    pub cursor: String,
    /// The row.
    pub node: N,
}

impl<N: PlainFields> PlainFields for Edge<N>
where
    Edge<N>: OutputType,
{
    fn plain_field(
        &self,
        ctx: &async_graphql::ContextSelectionSet<'_>,
        field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> Option<async_graphql::Value> {
        match field.node.name.node.as_str() {
            "cursor" => plain::output(&self.cursor, &ctx.with_field(field), field),
            "node" => plain::nested(&self.node, ctx, field),
            _ => None,
        }
    }
}

/// Declares the GraphQL object of `Connection<$listing>` named `$name`.
macro_rules! connection_object {
    ($listing:ty, $name:literal, $doc:literal, $total_doc:literal) => {
        #[doc = $doc]
        #[async_graphql::Object(name = $name)]
        impl $crate::graphql::connection::Connection<$listing> {
            /// The rows of this page, each with its cursor.
            async fn edges(
                &self,
                ctx: &async_graphql::Context<'_>,
            ) -> async_graphql::Result<
                Vec<
                    $crate::graphql::plain::Plain<
                        $crate::graphql::connection::Edge<
                            <$listing as $crate::graphql::connection::Listing>::Node,
                        >,
                    >,
                >,
            > {
                self.edges_of(ctx).await
            }
            /// Whether more rows follow, and the cursor to ask for them.
            async fn page_info(&self) -> $crate::graphql::types::PageInfo {
                self.info()
            }
            #[doc = $total_doc]
            async fn total_count(
                &self,
                ctx: &async_graphql::Context<'_>,
            ) -> async_graphql::Result<u64> {
                $crate::graphql::connection::Listing::total(&self.listing, ctx).await
            }
        }
    };
}
pub(crate) use connection_object;
