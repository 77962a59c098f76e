//! Lead scoring as the API shows it: the tenant's rules (ADMIN replaces them) and each
//! customer's score explanation.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use domain::analysis::scores;
use domain::analysis::scoring::{self as d, FieldOp};

use super::context::{db, scope};
use super::enums::CallOutcome;
use super::error::GqlResultExt;

/// How a field rule compares the field's value.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScoreFieldOp {
    /// The field has a value.
    Present,
    /// Equal to `value` (text without case; numbers and booleans by value).
    Equals,
    /// A number at least `value`.
    AtLeast,
    /// A number at most `value`.
    AtMost,
}

impl From<ScoreFieldOp> for FieldOp {
    fn from(v: ScoreFieldOp) -> Self {
        match v {
            ScoreFieldOp::Present => FieldOp::Present,
            ScoreFieldOp::Equals => FieldOp::Equals,
            ScoreFieldOp::AtLeast => FieldOp::AtLeast,
            ScoreFieldOp::AtMost => FieldOp::AtMost,
        }
    }
}

impl From<FieldOp> for ScoreFieldOp {
    fn from(v: FieldOp) -> Self {
        match v {
            FieldOp::Present => ScoreFieldOp::Present,
            FieldOp::Equals => ScoreFieldOp::Equals,
            FieldOp::AtLeast => ScoreFieldOp::AtLeast,
            FieldOp::AtMost => ScoreFieldOp::AtMost,
        }
    }
}

/// Points an outcome gives per call (faded by the call's age).
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "OutcomeWeightInput")]
pub struct OutcomeWeight {
    pub outcome: CallOutcome,
    pub points: f64,
}

/// Points for a custom field's value in the newest analysis that filled it.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "FieldRuleInput")]
pub struct FieldRule {
    pub field: String,
    pub op: ScoreFieldOp,
    /// The value compared (EQUALS, AT_LEAST, AT_MOST).
    pub value: Option<String>,
    pub points: f64,
}

/// How a customer's lead score is computed from its calls (see the README for the defaults).
#[derive(SimpleObject, Clone)]
pub struct ScoringRules {
    /// Where every lead starts.
    pub base: f64,
    pub outcome_weights: Vec<OutcomeWeight>,
    /// Points at a sentiment score of 1 (minus this at -1), per analysed call.
    pub sentiment_weight: f64,
    pub talk_points_per_minute: f64,
    pub talk_max_points: f64,
    /// Points taken per unanswered attempt (busy, no answer).
    pub unanswered_penalty: f64,
    pub unanswered_max_penalty: f64,
    /// A call's contribution halves every this many days.
    pub half_life_days: f64,
    pub field_rules: Vec<FieldRule>,
    /// HOT from this score.
    pub hot_threshold: f64,
    /// WARM from this score (COLD below).
    pub warm_threshold: f64,
}

/// A whole rule set; a field left out takes its default (not its current value).
/// `outcomeWeights` lists the outcomes to weigh differently from the defaults.
#[derive(InputObject, Default)]
pub struct ScoringRulesInput {
    pub base: Option<f64>,
    pub outcome_weights: Option<Vec<OutcomeWeight>>,
    pub sentiment_weight: Option<f64>,
    pub talk_points_per_minute: Option<f64>,
    pub talk_max_points: Option<f64>,
    pub unanswered_penalty: Option<f64>,
    pub unanswered_max_penalty: Option<f64>,
    pub half_life_days: Option<f64>,
    pub field_rules: Option<Vec<FieldRule>>,
    pub hot_threshold: Option<f64>,
    pub warm_threshold: Option<f64>,
}

impl ScoringRulesInput {
    fn into_rules(self) -> d::ScoringRules {
        let defaults = d::ScoringRules::default();
        let mut outcome_weights = defaults.outcome_weights.clone();
        for w in self.outcome_weights.unwrap_or_default() {
            let outcome = w.outcome.into();
            match outcome_weights.iter_mut().find(|x| x.outcome == outcome) {
                Some(x) => x.points = w.points,
                None => outcome_weights.push(d::OutcomeWeight {
                    outcome,
                    points: w.points,
                }),
            }
        }
        d::ScoringRules {
            base: self.base.unwrap_or(defaults.base),
            outcome_weights,
            sentiment_weight: self.sentiment_weight.unwrap_or(defaults.sentiment_weight),
            talk_points_per_minute: self
                .talk_points_per_minute
                .unwrap_or(defaults.talk_points_per_minute),
            talk_max_points: self.talk_max_points.unwrap_or(defaults.talk_max_points),
            unanswered_penalty: self
                .unanswered_penalty
                .unwrap_or(defaults.unanswered_penalty),
            unanswered_max_penalty: self
                .unanswered_max_penalty
                .unwrap_or(defaults.unanswered_max_penalty),
            half_life_days: self.half_life_days.unwrap_or(defaults.half_life_days),
            field_rules: self
                .field_rules
                .unwrap_or_default()
                .into_iter()
                .map(|f| d::FieldRule {
                    field: f.field,
                    op: f.op.into(),
                    value: f.value,
                    points: f.points,
                })
                .collect(),
            hot_threshold: self.hot_threshold.unwrap_or(defaults.hot_threshold),
            warm_threshold: self.warm_threshold.unwrap_or(defaults.warm_threshold),
        }
    }
}

impl From<d::ScoringRules> for ScoringRules {
    fn from(r: d::ScoringRules) -> Self {
        ScoringRules {
            base: r.base,
            outcome_weights: r
                .outcome_weights
                .into_iter()
                .map(|w| OutcomeWeight {
                    outcome: w.outcome.into(),
                    points: w.points,
                })
                .collect(),
            sentiment_weight: r.sentiment_weight,
            talk_points_per_minute: r.talk_points_per_minute,
            talk_max_points: r.talk_max_points,
            unanswered_penalty: r.unanswered_penalty,
            unanswered_max_penalty: r.unanswered_max_penalty,
            half_life_days: r.half_life_days,
            field_rules: r
                .field_rules
                .into_iter()
                .map(|f| FieldRule {
                    field: f.field,
                    op: f.op.into(),
                    value: f.value,
                    points: f.points,
                })
                .collect(),
            hot_threshold: r.hot_threshold,
            warm_threshold: r.warm_threshold,
        }
    }
}

/// One rule's part in a customer's lead score.
#[derive(SimpleObject)]
pub struct ScoreContribution {
    /// `base`, `outcome:<OUTCOME>`, `sentiment`, `talkTime`, `unanswered`, `field:<name>`, `doNotCall`.
    pub rule: String,
    pub detail: String,
    pub points: f64,
}

impl From<d::Contribution> for ScoreContribution {
    fn from(c: d::Contribution) -> Self {
        ScoreContribution {
            rule: c.rule,
            detail: c.detail,
            points: c.points,
        }
    }
}

#[derive(Default)]
pub struct ScoringQuery;

#[Object]
impl ScoringQuery {
    /// The tenant's lead-scoring rules (the defaults until an ADMIN sets them).
    async fn scoring_rules(&self, ctx: &Context<'_>) -> async_graphql::Result<ScoringRules> {
        scores::rules(db(ctx)?, scope(ctx)?)
            .await
            .map(Into::into)
            .gql()
    }
}

#[derive(Default)]
pub struct ScoringMutation;

#[Object]
impl ScoringMutation {
    /// Replaces the tenant's lead-scoring rules (ADMIN; a field left out takes its
    /// default); every customer is rescored in the background.
    async fn set_scoring_rules(
        &self,
        ctx: &Context<'_>,
        input: ScoringRulesInput,
    ) -> async_graphql::Result<ScoringRules> {
        scores::set_rules(db(ctx)?, scope(ctx)?, input.into_rules())
            .await
            .map(Into::into)
            .gql()
    }
}
