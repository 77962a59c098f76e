//! A provider with no network: the embedded default's way to place calls.
//!
//! Every call follows a script chosen deterministically from the simulator's seed and the
//! number dialled: queued → initiated → ringing → in-progress → call-disconnected →
//! completed, or an ending of busy / no-answer / failed, with a transcript, duration and
//! cost to match. The execution id carries when and whom the call dialled, so any process
//! can say where a call stands without shared state. Its reports enter through
//! `domain::ingest` like a webhook's.

pub mod playback;
mod script;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

pub use script::{Outcome, Script, Stage};

use super::{
    AgentListing, CallProvider, CallReport, ExecutionPage, ListQuery, PlaceCall, PlacedCall,
    ProviderError, ProviderResult,
};
use crate::types::{CallDirection, Provider};

/// Synthetic history: one slot every this many minutes may hold a call.
const SLOT_MINUTES: i64 = 20;
const PAGE_SIZE: usize = 50;

#[derive(Debug, Clone)]
pub struct Simulator {
    seed: u64,
    speed: f64,
}

/// Where one simulated call is: parsed from its execution id.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCall {
    pub placed_at: DateTime<Utc>,
    pub to_number: String,
    pub provider_agent_id: String,
}

impl SimCall {
    pub fn execution_id(&self) -> String {
        format!(
            "sim.{}.{}.{}",
            self.placed_at.timestamp_millis(),
            self.to_number.trim_start_matches('+'),
            self.provider_agent_id
        )
    }

    pub fn parse(id: &str) -> Option<SimCall> {
        let mut parts = id.splitn(4, '.');
        if parts.next()? != "sim" {
            return None;
        }
        let ms: i64 = parts.next()?.parse().ok()?;
        let digits = parts.next()?;
        let agent = parts.next()?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || agent.is_empty() {
            return None;
        }
        Some(SimCall {
            placed_at: Utc.timestamp_millis_opt(ms).single()?,
            to_number: format!("+{digits}"),
            provider_agent_id: agent.to_owned(),
        })
    }
}

impl Simulator {
    pub fn new(seed: u64, speed: f64) -> Self {
        Simulator {
            seed,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    pub fn script(&self, call: &SimCall) -> Script {
        Script::for_number(self.seed, &call.to_number)
    }

    /// Wall-clock time at which `stage` of `call` happens, at this simulator's speed.
    pub fn stage_time(&self, call: &SimCall, stage: &Stage) -> DateTime<Utc> {
        call.placed_at + Duration::milliseconds((stage.offset_seconds * 1000.0 / self.speed) as i64)
    }

    /// The report the provider would send at `stage_index` of the call's script.
    pub fn report_at(&self, call: &SimCall, stage_index: usize) -> Option<CallReport> {
        let script = self.script(call);
        let stage = script.stages.get(stage_index)?;
        let mut r = CallReport::new(Provider::Simulator, call.execution_id(), stage.status);
        r.provider_agent_id = Some(call.provider_agent_id.clone());
        r.direction = CallDirection::Outbound;
        r.from_number = Some("+12125550199".to_owned());
        r.to_number = Some(call.to_number.clone());
        r.provider_call_id = Some(format!("SIM{:016x}", script.hash));
        r.started_at = Some(call.placed_at);
        r.occurred_at = Some(self.stage_time(call, stage));
        script.fill(&mut r, stage_index, call.placed_at, self.speed);
        Some(r)
    }

    /// The call's state as of `now`.
    pub fn report_as_of(&self, call: &SimCall, now: DateTime<Utc>) -> CallReport {
        let script = self.script(call);
        let reached = script
            .stages
            .iter()
            .rposition(|s| self.stage_time(call, s) <= now)
            .unwrap_or(0);
        // `reached` indexes the script, so the report exists.
        self.report_at(call, reached).unwrap_or_else(|| {
            CallReport::new(
                Provider::Simulator,
                call.execution_id(),
                script.stages[0].status,
            )
        })
    }

    /// Calls an agent "made" in the past: a deterministic history for sync demos and
    /// benchmarks, finished calls only, newest first.
    fn history(&self, agent: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<SimCall> {
        let now = Utc::now() - Duration::hours(1);
        let to = to.min(now);
        let slot = Duration::minutes(SLOT_MINUTES);
        let mut t = Utc
            .timestamp_opt(
                from.timestamp() - from.timestamp().rem_euclid(slot.num_seconds()),
                0,
            )
            .single()
            .unwrap_or(from);
        let mut calls = Vec::new();
        while t <= to {
            let h = script::hash(self.seed, &format!("{agent}@{}", t.timestamp()));
            if h.is_multiple_of(3) {
                let at = t + Duration::seconds(((h >> 8) % (slot.num_seconds() as u64)) as i64);
                if at >= from && at <= to {
                    calls.push(SimCall {
                        placed_at: at,
                        // A pool of 500 numbers, so customers call back and get deduped.
                        to_number: format!("+1212555{:04}", (h >> 20) % 500),
                        provider_agent_id: agent.to_owned(),
                    });
                }
            }
            t += slot;
        }
        calls.reverse();
        calls
    }
}

impl CallProvider for Simulator {
    fn kind(&self) -> Provider {
        Provider::Simulator
    }

    fn place_call(&self, call: PlaceCall) -> BoxFuture<'_, ProviderResult<PlacedCall>> {
        let sim = SimCall {
            placed_at: Utc::now(),
            to_number: call.to_number,
            provider_agent_id: call.provider_agent_id,
        };
        async move {
            if sim.provider_agent_id.contains('.') && SimCall::parse(&sim.execution_id()).is_none()
            {
                return Err(ProviderError::Rejected {
                    status: 422,
                    message: "invalid agent id".into(),
                });
            }
            Ok(PlacedCall {
                execution_id: sim.execution_id(),
            })
        }
        .boxed()
    }

    fn fetch_execution(&self, execution_id: &str) -> BoxFuture<'_, ProviderResult<CallReport>> {
        let result = SimCall::parse(execution_id)
            .map(|c| self.report_as_of(&c, Utc::now()))
            .ok_or(ProviderError::NotFound);
        async move { result }.boxed()
    }

    fn list_executions(&self, q: ListQuery) -> BoxFuture<'_, ProviderResult<ExecutionPage>> {
        let result = (|| {
            let agent = q
                .provider_agent_id
                .clone()
                .ok_or(ProviderError::Unsupported(
                    "the simulator lists executions per agent",
                ))?;
            let page: usize = match q.cursor.as_deref() {
                None => 0,
                Some(c) => c
                    .parse()
                    .map_err(|_| ProviderError::Decode(format!("bad cursor {c:?}")))?,
            };
            let all = self.history(&agent, q.from, q.to);
            let reports = all
                .iter()
                .skip(page * PAGE_SIZE)
                .take(PAGE_SIZE)
                .map(|c| self.report_as_of(c, Utc::now()))
                .collect();
            let next = ((page + 1) * PAGE_SIZE < all.len()).then(|| (page + 1).to_string());
            Ok(ExecutionPage { reports, next })
        })();
        async move { result }.boxed()
    }

    /// The simulator has no account: it plays whichever agents the tenant registered.
    fn list_agents(&self) -> BoxFuture<'_, ProviderResult<AgentListing>> {
        async { Ok(AgentListing::PerAgent(Vec::new())) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CallStatus;

    fn call(number: &str) -> SimCall {
        SimCall {
            placed_at: Utc.timestamp_millis_opt(1_760_000_000_000).unwrap(),
            to_number: number.into(),
            provider_agent_id: "agent-1".into(),
        }
    }

    #[test]
    fn execution_ids_round_trip() {
        let c = call("+919812345678");
        assert_eq!(SimCall::parse(&c.execution_id()), Some(c));
        assert_eq!(SimCall::parse("sim.x.1.a"), None);
        assert_eq!(SimCall::parse("bolna-id"), None);
    }

    #[test]
    fn scripts_are_deterministic_and_varied() {
        let sim = Simulator::new(7, 1.0);
        let a = sim.script(&call("+15550000001"));
        assert_eq!(a, sim.script(&call("+15550000001")));
        let mut outcomes = std::collections::HashSet::new();
        for n in 0..200 {
            let s = sim.script(&call(&format!("+1555{n:07}")));
            assert!(s.stages.last().unwrap().status.is_terminal());
            // Strictly increasing ranks and times.
            for w in s.stages.windows(2) {
                assert!(w[0].status.rank() < w[1].status.rank());
                assert!(w[0].offset_seconds < w[1].offset_seconds);
            }
            outcomes.insert(s.outcome);
        }
        assert!(outcomes.len() >= 4, "{outcomes:?}");
    }

    #[test]
    fn the_state_follows_the_clock_at_its_speed() {
        let sim = Simulator::new(1, 100.0);
        let c = call("+15550000001");
        assert_eq!(sim.report_as_of(&c, c.placed_at).status, CallStatus::Queued);
        let end = sim.report_as_of(&c, c.placed_at + Duration::hours(1));
        assert!(end.status.is_terminal());
        if end.status == CallStatus::Completed {
            assert!(
                end.transcript.is_some() && end.summary.is_some() && end.recording_url.is_some()
            );
        }
    }

    #[test]
    fn history_pages_cover_the_window_once() {
        let sim = Simulator::new(3, 1.0);
        let to = Utc::now() - Duration::days(1);
        let from = to - Duration::days(7);
        let all = sim.history("agent-9", from, to);
        assert!(all.len() > 100);
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = sim
                .list_executions(ListQuery {
                    provider_agent_id: Some("agent-9".into()),
                    from,
                    to,
                    cursor,
                })
                .now_or_never()
                .unwrap()
                .unwrap();
            seen.extend(page.reports.into_iter().map(|r| r.execution_id));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), all.len());
    }
}
