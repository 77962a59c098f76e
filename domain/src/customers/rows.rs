//! Customer rows decoded by position. The entity's `FromQueryResult` finds each column by
//! name (a formatted name and a hash lookup per value, a formatted error per NULL), which
//! showed in the profile of every page of customers; these reads select the entity's
//! columns in their declared order, as `Entity::find()` does, and read them by index.

use entity::customer;
use sea_orm::{ConnectionTrait, DbErr, QueryResult, QueryTrait, Select, TryGetable};

/// Every row `select` (a plain `customer::Entity::find()` with filters, order and limit)
/// returns.
pub(crate) async fn all<C: ConnectionTrait>(
    conn: &C,
    select: Select<customer::Entity>,
) -> Result<Vec<customer::Model>, DbErr> {
    let statement = select.build(conn.get_database_backend());
    conn.query_all_raw(statement)
        .await?
        .iter()
        .map(decode)
        .collect()
}

fn get<T: TryGetable>(row: &QueryResult, i: usize) -> Result<T, DbErr> {
    T::try_get_by_index(row, i).map_err(DbErr::from)
}

/// A row in `customer::Column` order (the order `rows_follow_the_declared_order` checks).
fn decode(row: &QueryResult) -> Result<customer::Model, DbErr> {
    Ok(customer::Model {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        phone_number: get(row, 2)?,
        name: get(row, 3)?,
        email: get(row, 4)?,
        status: get(row, 5)?,
        tags: get(row, 6)?,
        lead_score: get(row, 7)?,
        segment: get(row, 8)?,
        score_explanation: get(row, 9)?,
        notes: get(row, 10)?,
        source: get(row, 11)?,
        last_contacted_at: get(row, 12)?,
        created_at: get(row, 13)?,
        updated_at: get(row, 14)?,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{IdenStatic, Iterable};

    use super::*;

    #[test]
    fn rows_follow_the_declared_order() {
        let names: Vec<&str> = customer::Column::iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "tenant_id",
                "phone_number",
                "name",
                "email",
                "status",
                "tags",
                "lead_score",
                "segment",
                "score_explanation",
                "notes",
                "source",
                "last_contacted_at",
                "created_at",
                "updated_at",
            ]
        );
    }
}
