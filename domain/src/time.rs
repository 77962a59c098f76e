//! Instants from outside (arguments, provider reports) are kept inside a sane range, so
//! date arithmetic can never overflow and a year-9999 report cannot freeze a lead.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::error::{DomainError, DomainResult};

/// Earliest instant an argument may name.
pub fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How far ahead of now an argument may reach (clock skew between client and server).
pub const MAX_AHEAD: Duration = Duration::hours(1);

/// How far ahead of now a provider's reported time may be (clock skew) before it is
/// clamped: a report cannot be about the future.
pub const REPORTED_SLACK: Duration = Duration::minutes(5);

/// Refuses an argument outside 2000-01-01 .. now + 1 h.
pub fn check_instant(field: &'static str, at: DateTime<Utc>) -> DomainResult<DateTime<Utc>> {
    let latest = Utc::now() + MAX_AHEAD;
    if at < earliest() || at > latest {
        return Err(DomainError::invalid(
            field,
            "must be between 2000-01-01T00:00:00Z and an hour from now",
        ));
    }
    Ok(at)
}

/// A provider's reported time, clamped to 2000-01-01 .. now + 5 minutes.
pub fn clamp_reported(at: DateTime<Utc>) -> DateTime<Utc> {
    at.clamp(earliest(), Utc::now() + REPORTED_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_outside_the_range_are_refused_or_clamped() {
        assert!(check_instant("since", DateTime::<Utc>::MIN_UTC).is_err());
        assert!(check_instant("since", Utc::now() + Duration::days(2)).is_err());
        assert!(check_instant("since", Utc::now()).is_ok());
        assert!(clamp_reported(DateTime::<Utc>::MAX_UTC) <= Utc::now() + REPORTED_SLACK);
        assert_eq!(clamp_reported(DateTime::<Utc>::MIN_UTC), earliest());
    }
}
