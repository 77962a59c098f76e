//! The script one simulated call follows, derived from a seed and the number dialled.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::providers::CallReport;
use crate::types::CallStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Booked,
    Interested,
    Callback,
    NotInterested,
    Busy,
    NoAnswer,
    Failed,
}

/// One status the call reaches, `offset_seconds` of real time after it was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub status: CallStatus,
    pub offset_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub hash: u64,
    pub outcome: Outcome,
    pub stages: Vec<Stage>,
    pub talk_seconds: f64,
}

/// FNV-1a over the input, finished with splitmix64: stable across builds and platforms.
pub(crate) fn hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Script {
    pub fn for_number(seed: u64, number: &str) -> Script {
        let h = hash(seed, number);
        let outcome = match h % 100 {
            0..=17 => Outcome::Booked,
            18..=37 => Outcome::Interested,
            38..=51 => Outcome::Callback,
            52..=69 => Outcome::NotInterested,
            70..=79 => Outcome::Busy,
            80..=93 => Outcome::NoAnswer,
            _ => Outcome::Failed,
        };
        let ring = 3.0 + ((h >> 8) % 12) as f64;
        let talk = 25.0 + ((h >> 16) % 200) as f64;
        let processing = 60.0 + ((h >> 24) % 90) as f64;
        let stage = |status, offset_seconds| Stage {
            status,
            offset_seconds,
        };
        let mut stages = vec![
            stage(CallStatus::Queued, 0.0),
            stage(CallStatus::Initiated, 1.0),
        ];
        match outcome {
            Outcome::Failed => stages.push(stage(CallStatus::Failed, 2.0)),
            Outcome::Busy => {
                stages.push(stage(CallStatus::Ringing, 2.0));
                stages.push(stage(CallStatus::Busy, 2.0 + ring.min(6.0)));
            }
            Outcome::NoAnswer => {
                stages.push(stage(CallStatus::Ringing, 2.0));
                stages.push(stage(CallStatus::NoAnswer, 32.0));
            }
            _ => {
                stages.push(stage(CallStatus::Ringing, 2.0));
                stages.push(stage(CallStatus::InProgress, 2.0 + ring));
                stages.push(stage(CallStatus::CallDisconnected, 2.0 + ring + talk));
                stages.push(stage(CallStatus::Completed, 2.0 + ring + talk + processing));
            }
        }
        Script {
            hash: h,
            outcome,
            stages,
            talk_seconds: if matches!(outcome, Outcome::Busy | Outcome::NoAnswer | Outcome::Failed)
            {
                0.0
            } else {
                talk
            },
        }
    }

    /// Fills what a provider knows at `stage_index`: the transcript from hang-up on,
    /// the summary, recording and extraction only once the call is completed.
    pub(crate) fn fill(
        &self,
        r: &mut CallReport,
        stage_index: usize,
        placed_at: DateTime<Utc>,
        speed: f64,
    ) {
        let Some(stage) = self.stages.get(stage_index) else {
            return;
        };
        let at = |offset: f64| placed_at + Duration::milliseconds((offset * 1000.0 / speed) as i64);
        let ended =
            matches!(stage.status, CallStatus::CallDisconnected) || stage.status.is_terminal();
        if !ended {
            return;
        }
        let hang_up = self
            .stages
            .iter()
            .find(|s| s.status == CallStatus::CallDisconnected || s.status.is_terminal())
            .map(|s| s.offset_seconds)
            .unwrap_or(stage.offset_seconds);
        r.ended_at = Some(at(hang_up));
        r.duration_seconds = Some(self.talk_seconds);
        // 9 cents a minute, in cents like Bolna's `total_cost`.
        r.cost = Some((self.talk_seconds / 60.0 * 9.0 * 100.0).round() / 100.0);
        match self.outcome {
            Outcome::Busy => r.hangup_reason = Some("Call recipient was busy".into()),
            Outcome::NoAnswer => r.hangup_reason = Some("Call unanswered".into()),
            Outcome::Failed => {
                r.hangup_reason = Some("Carrier rejected the call".into());
                r.error_message = Some("The carrier could not route the number".into());
            }
            _ => {
                r.hangup_reason = Some("Call recipient hung up".into());
                r.transcript = Some(self.transcript());
                if stage.status == CallStatus::Completed {
                    r.summary = Some(self.summary().into());
                    r.recording_url = Some(format!(
                        "https://simulator.switchboard.invalid/recordings/{:016x}.mp3",
                        self.hash
                    ));
                    r.extracted_data = Some(self.extracted());
                }
            }
        }
    }

    fn transcript(&self) -> String {
        let close = match self.outcome {
            Outcome::Booked => {
                "user: Thursday at 11 works for me.\nassistant: Booked for Thursday at 11. You will get a confirmation by SMS."
            }
            Outcome::Interested => {
                "user: Sounds useful, send me the details.\nassistant: I will email the brochure today."
            }
            Outcome::Callback => {
                "user: I am driving, can you call me tomorrow evening?\nassistant: Of course, I will call you tomorrow after 6."
            }
            _ => {
                "user: No thanks, I am not interested.\nassistant: Understood, thank you for your time."
            }
        };
        format!(
            "assistant: Hello, this is Maya calling from Acme Homes. Is this a good time to talk?\n\
             user: Yes, go ahead.\n\
             assistant: You enquired about our new apartments last week. Are you still looking?\n\
             {close}"
        )
    }

    fn summary(&self) -> &'static str {
        match self.outcome {
            Outcome::Booked => "The customer booked a site visit for Thursday at 11.",
            Outcome::Interested => {
                "The customer is interested and asked for the brochure by email."
            }
            Outcome::Callback => "The customer asked to be called back tomorrow evening.",
            _ => "The customer is not interested.",
        }
    }

    fn extracted(&self) -> serde_json::Value {
        let (intent, interested) = match self.outcome {
            Outcome::Booked => ("booked", true),
            Outcome::Interested => ("interested", true),
            Outcome::Callback => ("callback", true),
            _ => ("not interested", false),
        };
        json!({ "intent": intent, "interested": interested })
    }
}
