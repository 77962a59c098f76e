//! GraphQL enums, mirrored one-to-one from `domain::types`.

use async_graphql::Enum;
use domain::types as d;

macro_rules! mirror {
    ($(#[$meta:meta])* $name:ident = $domain:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl From<$name> for d::$domain {
            fn from(v: $name) -> Self { match v { $($name::$variant => d::$domain::$variant),+ } }
        }
        impl From<d::$domain> for $name {
            fn from(v: d::$domain) -> Self { match v { $(d::$domain::$variant => $name::$variant),+ } }
        }
    };
}

mirror!(
    /// A voice-AI provider.
    Provider = Provider { Bolna, Teli, Simulator }
);
mirror!(
    /// What an API key may do: ADMIN everything, MEMBER all but keys and credentials, VIEWER read only.
    Role = Role { Admin, Member, Viewer }
);
mirror!(
    /// Where a lead stands in the funnel.
    LeadStatus = LeadStatus { New, Contacted, Interested, Callback, Booked, NotInterested, DoNotCall }
);
mirror!(
    /// Inbound or outbound.
    CallDirection = CallDirection { Inbound, Outbound }
);
mirror!(
    /// Call lifecycle status. Terminal: COMPLETED BUSY NO_ANSWER BALANCE_LOW CANCELED FAILED STOPPED ERROR.
    CallStatus = CallStatus {
        Scheduled, Queued, Rescheduled, Initiated, Ringing, InProgress, CallDisconnected,
        Completed, Busy, NoAnswer, BalanceLow, Canceled, Failed, Stopped, Error,
    }
);
mirror!(
    /// Which path reported a call status.
    CallEventSource = EventSource { Webhook, Poll, Sync, Simulator, Api }
);
mirror!(
    /// Where a sync run stands.
    SyncStatus = SyncStatus { Running, Succeeded, Partial, Failed }
);
mirror!(
    /// Who started a sync run.
    SyncTrigger = SyncTrigger { Manual, Scheduled }
);
mirror!(
    /// Where a campaign stands.
    CampaignStatus = CampaignStatus { Draft, Running, Paused, Completed, Canceled }
);
mirror!(
    /// Where one recipient of a campaign stands.
    QueueItemStatus = QueueItemStatus { Pending, Dispatching, InProgress, Completed, Failed, Skipped, Canceled }
);
mirror!(
    /// How the customer sounded on a call.
    Sentiment = Sentiment { Positive, Neutral, Negative }
);
mirror!(
    /// What a call came to.
    CallOutcome = CallOutcome {
        AppointmentBooked, Interested, CallbackRequested, NotInterested, Voicemail, NoAnswer,
        WrongNumber, DoNotCall, Other,
    }
);
mirror!(
    /// The type of a custom analysis field.
    AnalysisFieldType = FieldType { String, Number, Boolean, Enum }
);
mirror!(
    /// How a call's analysis ended: DONE, SKIPPED (too little to analyse), FAILED (after its retries).
    AnalysisStatus = AnalysisStatus { Done, Skipped, Failed }
);
mirror!(
    /// Where a background job stands: RUNNING, then SUCCEEDED or FAILED.
    JobStatus = TaskStatus { Running, Succeeded, Failed }
);
mirror!(
    /// Which way a CRM sync moves people: PULL (CRM to Switchboard), PUSH, or BOTH.
    CrmSyncDirection = CrmDirection { Pull, Push, Both }
);
mirror!(
    /// A CRM Switchboard syncs customers with.
    CrmProvider = CrmProvider { Twenty }
);
