//! Enumerations stored as strings in the database, typed in the entities so that no
//! code outside this file converts between a column's text and its meaning.

use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sea_orm::DeriveValueType)]
        #[sea_orm(value_type = "String")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue { kind: stringify!($name), value: other.to_owned() }),
                }
            }
        }

        // Lets the enum be (part of) a primary key, as `provider` is for credentials.
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, sea_orm::DbErr> {
                Err(sea_orm::DbErr::ConvertFromU64(stringify!($name)))
            }
        }
    };
}

/// A column held text that no variant of its enum spells.
#[derive(Debug)]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} value {:?}", self.kind, self.value)
    }
}

impl std::error::Error for UnknownValue {}

string_enum!(
    /// A voice-AI provider.
    Provider { Bolna => "BOLNA", Teli => "TELI", Simulator => "SIMULATOR" }
);

string_enum!(
    /// What a sync run reads from or writes to: a voice-AI provider's calls, or a CRM.
    SyncSource { Bolna => "BOLNA", Teli => "TELI", Simulator => "SIMULATOR", Twenty => "TWENTY" }
);

impl SyncSource {
    /// The call provider a calls sync reads; `None` for a CRM.
    pub fn call_provider(self) -> Option<Provider> {
        match self {
            SyncSource::Bolna => Some(Provider::Bolna),
            SyncSource::Teli => Some(Provider::Teli),
            SyncSource::Simulator => Some(Provider::Simulator),
            SyncSource::Twenty => None,
        }
    }
}

impl From<Provider> for SyncSource {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Bolna => SyncSource::Bolna,
            Provider::Teli => SyncSource::Teli,
            Provider::Simulator => SyncSource::Simulator,
        }
    }
}

string_enum!(
    /// Which way a CRM sync run moves people.
    CrmDirection { Pull => "PULL", Push => "PUSH", Both => "BOTH" }
);

string_enum!(
    /// A CRM Switchboard syncs customers with.
    CrmProvider { Twenty => "TWENTY" }
);

string_enum!(
    /// What an API key may do inside its tenant.
    Role { Admin => "ADMIN", Member => "MEMBER", Viewer => "VIEWER" }
);

string_enum!(
    /// Where a lead stands in the sales funnel.
    LeadStatus {
        New => "NEW",
        Contacted => "CONTACTED",
        Interested => "INTERESTED",
        Callback => "CALLBACK",
        Booked => "BOOKED",
        NotInterested => "NOT_INTERESTED",
        DoNotCall => "DO_NOT_CALL",
    }
);

string_enum!(
    CallDirection { Inbound => "INBOUND", Outbound => "OUTBOUND" }
);

string_enum!(
    /// Provider-neutral call status (Bolna's fifteen values).
    CallStatus {
        Scheduled => "SCHEDULED",
        Queued => "QUEUED",
        Rescheduled => "RESCHEDULED",
        Initiated => "INITIATED",
        Ringing => "RINGING",
        InProgress => "IN_PROGRESS",
        CallDisconnected => "CALL_DISCONNECTED",
        Completed => "COMPLETED",
        Busy => "BUSY",
        NoAnswer => "NO_ANSWER",
        BalanceLow => "BALANCE_LOW",
        Canceled => "CANCELED",
        Failed => "FAILED",
        Stopped => "STOPPED",
        Error => "ERROR",
    }
);

impl CallStatus {
    /// Position in the lifecycle. A call's status only ever moves to a higher rank, so
    /// reports may arrive late, twice or out of order. Every terminal status outranks
    /// every live one, and `COMPLETED` (recording, transcript and extraction final)
    /// outranks the other endings.
    pub fn rank(self) -> i32 {
        match self {
            CallStatus::Scheduled => 1,
            CallStatus::Queued => 2,
            CallStatus::Rescheduled => 3,
            CallStatus::Initiated => 4,
            CallStatus::Ringing => 5,
            CallStatus::InProgress => 6,
            CallStatus::CallDisconnected => 7,
            CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::BalanceLow
            | CallStatus::Canceled
            | CallStatus::Failed
            | CallStatus::Stopped
            | CallStatus::Error => 8,
            CallStatus::Completed => 9,
        }
    }

    /// The lowest rank of a terminal status.
    pub const TERMINAL_RANK: i32 = 8;

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::NoAnswer
                | CallStatus::BalanceLow
                | CallStatus::Canceled
                | CallStatus::Failed
                | CallStatus::Stopped
                | CallStatus::Error
        )
    }
}

string_enum!(
    /// Which path reported a call status.
    EventSource { Webhook => "WEBHOOK", Poll => "POLL", Sync => "SYNC", Simulator => "SIMULATOR", Api => "API" }
);

string_enum!(
    /// Where a sync run stands.
    SyncStatus { Running => "RUNNING", Succeeded => "SUCCEEDED", Partial => "PARTIAL", Failed => "FAILED" }
);

string_enum!(
    /// Who started a sync run.
    SyncTrigger { Manual => "MANUAL", Scheduled => "SCHEDULED" }
);

string_enum!(
    /// Where a campaign stands.
    CampaignStatus { Draft => "DRAFT", Running => "RUNNING", Paused => "PAUSED", Completed => "COMPLETED", Canceled => "CANCELED" }
);

impl CampaignStatus {
    /// No item of a finished campaign is dialled again.
    pub fn is_finished(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Canceled)
    }
}

string_enum!(
    /// Where one recipient of a campaign stands.
    QueueItemStatus {
        Pending => "PENDING",
        Dispatching => "DISPATCHING",
        InProgress => "IN_PROGRESS",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Skipped => "SKIPPED",
        Canceled => "CANCELED",
    }
);

impl QueueItemStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            QueueItemStatus::Completed
                | QueueItemStatus::Failed
                | QueueItemStatus::Skipped
                | QueueItemStatus::Canceled
        )
    }
}

string_enum!(
    /// How the customer sounded on a call, from its analysis.
    Sentiment { Positive => "POSITIVE", Neutral => "NEUTRAL", Negative => "NEGATIVE" }
);

string_enum!(
    /// What a call came to, from its analysis.
    CallOutcome {
        AppointmentBooked => "APPOINTMENT_BOOKED",
        Interested => "INTERESTED",
        CallbackRequested => "CALLBACK_REQUESTED",
        NotInterested => "NOT_INTERESTED",
        Voicemail => "VOICEMAIL",
        NoAnswer => "NO_ANSWER",
        WrongNumber => "WRONG_NUMBER",
        DoNotCall => "DO_NOT_CALL",
        Other => "OTHER",
    }
);

string_enum!(
    /// How a call's analysis ended.
    AnalysisStatus { Done => "DONE", Skipped => "SKIPPED", Failed => "FAILED" }
);

string_enum!(
    /// The type of a tenant's custom extraction field.
    FieldType { String => "STRING", Number => "NUMBER", Boolean => "BOOLEAN", Enum => "ENUM" }
);

string_enum!(
    /// Where a user's background task stands.
    TaskStatus { Running => "RUNNING", Succeeded => "SUCCEEDED", Failed => "FAILED" }
);

string_enum!(
    /// Where a background job stands in the queue.
    JobStatus { Pending => "pending", Running => "running", Done => "done", Failed => "failed" }
);

string_enum!(
    /// Where one outbound webhook delivery (an event to an endpoint) stands.
    DeliveryStatus { Pending => "PENDING", Succeeded => "SUCCEEDED", Failed => "FAILED" }
);

string_enum!(
    /// Why a delivery exists: an event, a user's redelivery, or a test message.
    DeliveryTrigger { Event => "EVENT", Manual => "MANUAL", Test => "TEST" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse::<CallStatus>().unwrap(), *s);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert!("nope".parse::<LeadStatus>().is_err());
    }

    #[test]
    fn ranks_separate_live_from_terminal() {
        for s in CallStatus::ALL {
            assert_eq!(
                s.is_terminal(),
                s.rank() >= CallStatus::TERMINAL_RANK,
                "{s}"
            );
        }
        assert!(CallStatus::Completed.rank() > CallStatus::CallDisconnected.rank());
    }

    #[test]
    fn terminal_statuses_match_the_contract() {
        let terminal: Vec<_> = CallStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            terminal,
            [
                "COMPLETED",
                "BUSY",
                "NO_ANSWER",
                "BALANCE_LOW",
                "CANCELED",
                "FAILED",
                "STOPPED",
                "ERROR"
            ]
        );
    }
}
