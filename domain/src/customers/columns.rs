//! Customer rows decoded by position (see [`crate::db::by_position`]).

use chrono::DateTime;
use entity::customer;
use entity::values::LeadStatus;
use sea_orm::{DbErr, Iterable, QueryResult, TryGetError};
use uuid::Uuid;

use crate::db::by_position::{ByPosition, at};

impl ByPosition for customer::Entity {
    fn decode(row: &QueryResult) -> Result<customer::Model, DbErr> {
        let mut model = blank();
        for (i, column) in customer::Column::iter().enumerate() {
            read(&mut model, column, row, i).map_err(DbErr::from)?;
        }
        Ok(model)
    }
}

/// A model whose every field is about to be read.
fn blank() -> customer::Model {
    customer::Model {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        phone_number: String::new(),
        name: None,
        email: None,
        status: LeadStatus::New,
        tags: serde_json::Value::Null,
        lead_score: None,
        segment: None,
        score_explanation: None,
        notes: None,
        source: None,
        last_contacted_at: None,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

/// Reads column `column` at position `i` into its field (every column is named here, so
/// a new column cannot be forgotten).
fn read(
    m: &mut customer::Model,
    column: customer::Column,
    row: &QueryResult,
    i: usize,
) -> Result<(), TryGetError> {
    use customer::Column as C;
    match column {
        C::Id => m.id = at(row, i)?,
        C::TenantId => m.tenant_id = at(row, i)?,
        C::PhoneNumber => m.phone_number = at(row, i)?,
        C::Name => m.name = at(row, i)?,
        C::Email => m.email = at(row, i)?,
        C::Status => m.status = at(row, i)?,
        C::Tags => m.tags = at(row, i)?,
        C::LeadScore => m.lead_score = at(row, i)?,
        C::Segment => m.segment = at(row, i)?,
        C::ScoreExplanation => m.score_explanation = at(row, i)?,
        C::Notes => m.notes = at(row, i)?,
        C::Source => m.source = at(row, i)?,
        C::LastContactedAt => m.last_contacted_at = at(row, i)?,
        C::CreatedAt => m.created_at = at(row, i)?,
        C::UpdatedAt => m.updated_at = at(row, i)?,
    }
    Ok(())
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

    use crate::db::by_position;
    use crate::testdb::{Backend, TestDb};

    use super::*;

    /// Decoding by position gives what the derived by-name decoding gives, for a row with
    /// every column set and one with every optional column NULL, on both databases.
    #[tokio::test]
    async fn rows_read_by_position_equal_rows_read_by_name() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(test_db) = TestDb::create(backend).await else {
                continue;
            };
            let db = sea_orm::Database::connect(test_db.url.as_str())
                .await
                .unwrap();
            let tenant = crate::testdb::tenant(&db, "Positions").await;
            let now = chrono::Utc::now();
            let full = customer::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant.id),
                phone_number: Set("+919876543210".into()),
                name: Set(Some("Asha Rao".into())),
                email: Set(Some("asha@example.com".into())),
                status: Set(LeadStatus::Interested),
                tags: Set(serde_json::json!(["vip", "hindi"])),
                lead_score: Set(Some(72.5)),
                segment: Set(Some("enterprise".into())),
                score_explanation: Set(Some(serde_json::json!([{"rule": "r", "points": 5}]))),
                notes: Set(Some("called twice".into())),
                source: Set(Some("CSV".into())),
                last_contacted_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
            };
            full.insert(&db).await.unwrap();
            let sparse = customer::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant.id),
                phone_number: Set("+919876543211".into()),
                name: Set(None),
                email: Set(None),
                status: Set(LeadStatus::New),
                tags: Set(serde_json::json!([])),
                lead_score: Set(None),
                segment: Set(None),
                score_explanation: Set(None),
                notes: Set(None),
                source: Set(None),
                last_contacted_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            };
            sparse.insert(&db).await.unwrap();

            let query = || {
                customer::Entity::find()
                    .filter(customer::Column::TenantId.eq(tenant.id))
                    .order_by_asc(customer::Column::Id)
            };
            let by_name = query().all(&db).await.unwrap();
            let by_index = by_position::all(&db, query()).await.unwrap();
            assert_eq!(by_name.len(), 2, "{backend:?}");
            assert_eq!(by_index, by_name, "{backend:?}");
            let first = by_position::one(&db, query()).await.unwrap();
            assert_eq!(first.as_ref(), by_name.first(), "{backend:?}");
        }
    }
}
