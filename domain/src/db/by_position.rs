//! Reading whole rows by position rather than by column name.
//!
//! An entity's derived `FromQueryResult` finds every column by name: a formatted name, a
//! hashed lookup per value, and a formatted error for every NULL. On a page of customers
//! that was 11 % of the server's instructions (callgrind), more than PostgreSQL's answer
//! cost to receive. Entities read on hot paths implement [`ByPosition`] and are read
//! through [`all`] and [`one`], which run the same statement and decode by index.

use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, QueryResult, QuerySelect, QueryTrait, Select, TryGetError,
    TryGetable,
};

/// An entity whose rows can be decoded by position from its default select list, which
/// names every column in `Column::iter()` order.
pub trait ByPosition: EntityTrait {
    fn decode(row: &QueryResult) -> Result<Self::Model, DbErr>;
}

/// Every row `query` selects.
pub async fn all<E: ByPosition, C: ConnectionTrait>(
    conn: &C,
    query: Select<E>,
) -> Result<Vec<E::Model>, DbErr> {
    let statement = query.build(conn.get_database_backend());
    conn.query_all_raw(statement)
        .await?
        .iter()
        .map(E::decode)
        .collect()
}

/// The first row `query` selects.
pub async fn one<E: ByPosition, C: ConnectionTrait>(
    conn: &C,
    query: Select<E>,
) -> Result<Option<E::Model>, DbErr> {
    let statement = query.limit(1).build(conn.get_database_backend());
    conn.query_one_raw(statement)
        .await?
        .as_ref()
        .map(E::decode)
        .transpose()
}

/// The value at position `i` of `row`.
pub fn at<T: TryGetable>(row: &QueryResult, i: usize) -> Result<T, TryGetError> {
    T::try_get_by_index(row, i)
}
