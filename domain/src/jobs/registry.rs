//! Every job kind a runner knows, erased from its type so the runner can hold them all.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{Gather, Job, JobRun, Lane, Outcome};

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send>>;
type GaveUpFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One registered kind: its constants and how to run a stored payload.
pub struct Kind<C> {
    pub kind: &'static str,
    pub lane: Lane,
    pub max_attempts: i32,
    pub timeout: Duration,
    /// Due jobs of one tenant a run takes together (1: one at a time).
    pub gather: usize,
    retry_in: fn(i32) -> Duration,
    run: fn(C, JobRun, serde_json::Value) -> RunFuture,
    gave_up: fn(C, serde_json::Value, String) -> GaveUpFuture,
    merge: fn(Vec<serde_json::Value>) -> Merged,
}

/// Payloads of jobs claimed together, as the payload of one run.
#[derive(Debug)]
pub struct Merged {
    /// What the run gets; `None` when no payload read as the kind (or, never expected, the
    /// merged job did not serialise).
    pub payload: Option<serde_json::Value>,
    /// The positions of the payloads that did not read as the kind (they are not in the
    /// run), with why.
    pub unreadable: Vec<(usize, String)>,
}

impl<C> Kind<C> {
    pub fn retry_in(&self, attempt: i32) -> Duration {
        (self.retry_in)(attempt)
    }

    /// Runs a stored payload. A payload that does not read as this kind fails for good.
    pub fn run(&self, ctx: C, run: JobRun, payload: serde_json::Value) -> RunFuture {
        (self.run)(ctx, run, payload)
    }

    pub fn gave_up(&self, ctx: C, payload: serde_json::Value, error: String) -> GaveUpFuture {
        (self.gave_up)(ctx, payload, error)
    }

    /// The payload of one run doing the work of `payloads` (a gathering kind's jobs).
    pub fn merge(&self, payloads: Vec<serde_json::Value>) -> Merged {
        (self.merge)(payloads)
    }
}

fn run_erased<J: Job>(ctx: J::Context, run: JobRun, payload: serde_json::Value) -> RunFuture {
    Box::pin(async move {
        match serde_json::from_value::<J>(payload) {
            Ok(job) => job.run(&ctx, &run).await,
            Err(e) => Ok(Outcome::Fail(unreadable::<J>(e))),
        }
    })
}

fn gave_up_erased<J: Job>(
    ctx: J::Context,
    payload: serde_json::Value,
    error: String,
) -> GaveUpFuture {
    Box::pin(async move {
        match serde_json::from_value::<J>(payload) {
            Ok(job) => job.gave_up(&ctx, &error).await,
            Err(_) => Ok(()),
        }
    })
}

fn unreadable<J: Job>(e: serde_json::Error) -> String {
    format!("unreadable {} payload: {e}", J::KIND)
}

fn merge_erased<J: Gather>(payloads: Vec<serde_json::Value>) -> Merged {
    let mut jobs = Vec::with_capacity(payloads.len());
    let mut unreadable = Vec::new();
    for (i, payload) in payloads.into_iter().enumerate() {
        match serde_json::from_value::<J>(payload) {
            Ok(job) => jobs.push(job),
            Err(e) => unreadable.push((i, self::unreadable::<J>(e))),
        }
    }
    let payload = if jobs.is_empty() {
        None
    } else {
        serde_json::to_value(J::gather(jobs)).ok()
    };
    Merged {
        payload,
        unreadable,
    }
}

/// A kind that does not gather runs its first payload; any other (never expected: the
/// runner gathers only kinds that do) fails rather than passing as done.
fn merge_none(payloads: Vec<serde_json::Value>) -> Merged {
    let unreadable = (1..payloads.len())
        .map(|i| (i, "this job kind does not run jobs together".to_owned()))
        .collect();
    Merged {
        payload: payloads.into_iter().next(),
        unreadable,
    }
}

/// A job enqueued once per period however many workers run (see `queue::enqueue_once`).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kind: &'static str,
    pub lane: Lane,
    pub period: Duration,
    pub payload: serde_json::Value,
}

/// The kinds a runner handles, by name, and the periodic ones among them.
pub struct Registry<C> {
    kinds: HashMap<&'static str, Kind<C>>,
    schedules: Vec<Schedule>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            kinds: HashMap::new(),
            schedules: Vec::new(),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Registry<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `J`. Registering one kind twice is a programming error caught at start-up.
    pub fn register<J: Job<Context = C>>(self) -> Self {
        self.add(Kind {
            kind: J::KIND,
            lane: J::LANE,
            max_attempts: J::MAX_ATTEMPTS.max(1),
            timeout: J::TIMEOUT,
            gather: 1,
            retry_in: J::retry_in,
            run: run_erased::<J>,
            gave_up: gave_up_erased::<J>,
            merge: merge_none,
        })
    }

    /// Adds `J`, whose runs take up to `jobs` due jobs of one tenant at once (see
    /// [`Gather`]).
    pub fn register_gathering<J: Gather<Context = C>>(self, jobs: usize) -> Self {
        self.add(Kind {
            kind: J::KIND,
            lane: J::LANE,
            max_attempts: J::MAX_ATTEMPTS.max(1),
            timeout: J::TIMEOUT,
            gather: jobs.max(1),
            retry_in: J::retry_in,
            run: run_erased::<J>,
            gave_up: gave_up_erased::<J>,
            merge: merge_erased::<J>,
        })
    }

    fn add(mut self, kind: Kind<C>) -> Self {
        let name = kind.kind;
        let previous = self.kinds.insert(name, kind);
        assert!(previous.is_none(), "job kind {name} registered twice");
        self
    }

    /// Adds `J` and enqueues its default value once every `period`.
    pub fn every<J: Job<Context = C> + Default>(self, period: Duration) -> Self {
        let mut this = self.register::<J>();
        this.schedules.push(Schedule {
            kind: J::KIND,
            lane: J::LANE,
            period,
            payload: serde_json::to_value(J::default()).unwrap_or_default(),
        });
        this
    }

    pub fn get(&self, kind: &str) -> Option<&Kind<C>> {
        self.kinds.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Kind<C>> {
        self.kinds.values()
    }

    /// The lanes with at least one kind, plus maintenance (which fails unknown kinds).
    pub fn lanes(&self) -> BTreeSet<Lane> {
        let mut lanes: BTreeSet<Lane> = self.kinds.values().map(|k| k.lane).collect();
        lanes.insert(Lane::Maintenance);
        lanes
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }
}
