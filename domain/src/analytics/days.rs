//! Local days in a time zone as UTC ranges, computed in Rust with the tz database, so the
//! daily series is bucketed the same way on every database (and a day of 23 or 25 hours
//! at a daylight-saving change is one day).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// One local day: its date and the UTC instants it covers, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// When the local `date` begins in `tz` (the first instant of the day: a zone that skips
/// midnight at a daylight-saving change begins the day at the first time that exists).
pub fn start_of(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    for minutes in (0..=180).step_by(15) {
        let Some(naive) = date.and_hms_opt(0, 0, 0) else {
            break;
        };
        let naive = naive + Duration::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // No zone skips more than a few hours; fall back to the UTC midnight.
    date.and_hms_opt(0, 0, 0)
        .map(|n| Utc.from_utc_datetime(&n))
        .unwrap_or_else(Utc::now)
}

/// The local days of `tz` overlapping `[since, until)`, each clipped to it.
pub fn days(tz: Tz, since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Day> {
    let mut out = Vec::new();
    if until <= since {
        return out;
    }
    let mut date = since.with_timezone(&tz).date_naive();
    let last = (until - Duration::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive();
    while date <= last {
        let Some(next) = date.succ_opt() else { break };
        out.push(Day {
            date,
            start: start_of(tz, date).max(since),
            end: start_of(tz, next).min(until),
        });
        date = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn kolkata_days_begin_at_18_30_utc() {
        let d = days(
            chrono_tz::Asia::Kolkata,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-03-03T00:00:00Z"),
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].date.to_string(), "2026-03-01");
        assert_eq!(d[0].start, utc("2026-03-01T00:00:00Z"));
        assert_eq!(d[0].end, utc("2026-03-01T18:30:00Z"));
        assert_eq!(d[2].date.to_string(), "2026-03-03");
        assert_eq!(d[2].end, utc("2026-03-03T00:00:00Z"));
    }

    #[test]
    fn new_york_has_a_23_hour_and_a_25_hour_day() {
        let tz = chrono_tz::America::New_York;
        let d = days(tz, utc("2026-03-08T05:00:00Z"), utc("2026-03-09T04:00:00Z"));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].end - d[0].start).num_hours(), 23);
        let d = days(tz, utc("2026-11-01T04:00:00Z"), utc("2026-11-02T05:00:00Z"));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].end - d[0].start).num_hours(), 25);
    }
}
