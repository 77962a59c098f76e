use crate::values::{AnalysisStatus, CallOutcome, Sentiment};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One analysis of a call; the newest of a call is `current` (re-analysis keeps the rest).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "call_analyses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub call_id: Uuid,
    pub current: bool,
    pub status: AnalysisStatus,
    pub sentiment: Option<Sentiment>,
    pub sentiment_score: Option<f64>,
    pub outcome: Option<CallOutcome>,
    #[sea_orm(column_type = "Text", nullable)]
    pub summary: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub extracted_data: Option<Json>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub latency_ms: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub analyzed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::call::Entity",
        from = "Column::CallId",
        to = "super::call::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Call,
}

impl Related<super::call::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Call.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
