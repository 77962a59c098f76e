//! When a throttled or failing server says to come back: `retry-after-ms`, `Retry-After`
//! (seconds or an HTTP date), else OpenAI's `x-ratelimit-reset-*` headers, which are
//! Go-style durations (`1s`, `6m0s`, `644ms`, `1m30.5s`), not numbers.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A server asking for a longer pause than this is treated as asking for this: the
/// analysis job retries later anyway, and a garbage header must not park it for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The pause the response asks for, if it says. Zero and negative values (Azure sends
/// `-1` or `0` when it does not know) count as not saying.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let explicit = header("retry-after-ms")
        .and_then(|v| seconds(v, 1000.0))
        .or_else(|| {
            header(RETRY_AFTER.as_str()).and_then(|v| seconds(v, 1.0).or_else(|| http_date(v)))
        });
    let wait = explicit.or_else(|| {
        let requests = header("x-ratelimit-reset-requests").and_then(go_duration);
        let tokens = header("x-ratelimit-reset-tokens").and_then(go_duration);
        requests.max(tokens)
    })?;
    (!wait.is_zero()).then(|| wait.min(MAX_RETRY_AFTER))
}

/// A plain number of units (`per_second` units make one second), e.g. `"2"` or `"1.5"`.
fn seconds(text: &str, per_second: f64) -> Option<Duration> {
    let n: f64 = text.parse().ok()?;
    if n <= 0.0 {
        return None;
    }
    from_nanos(n / per_second * 1e9)
}

/// Rounded to the nanosecond, so `0.644` s is exactly 644 ms; `None` when out of range.
fn from_nanos(nanos: f64) -> Option<Duration> {
    (nanos.is_finite() && nanos >= 0.0 && nanos < u64::MAX as f64)
        .then(|| Duration::from_nanos(nanos.round() as u64))
}

/// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`: the time left until then.
fn http_date(text: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// Parses a Go `time.Duration` string: one or more `<number><unit>` with units `h`, `m`,
/// `s`, `ms`, `us`/`µs`, `ns` and optional fractions (`1m30.5s`), or a bare `0`. Signs
/// and anything else are refused (`None`).
pub fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    // In nanoseconds.
    let mut total = 0.0_f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        // "." alone or "1.2.3" are not numbers; `parse` refuses both.
        if number.is_empty() || !number.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" | "μs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    from_nanos(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1s"), ms(1000));
        assert_eq!(go_duration("6m0s"), ms(360_000));
        assert_eq!(go_duration("644ms"), ms(644));
        assert_eq!(go_duration("1m30.5s"), ms(90_500));
        assert_eq!(go_duration("2h"), ms(7_200_000));
        assert_eq!(go_duration("1h2m3s"), ms(3_723_000));
        assert_eq!(go_duration("1.574s"), ms(1574));
        assert_eq!(go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(go_duration(" 20ms "), ms(20));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
    }

    #[test]
    fn go_durations_refuse_garbage() {
        for bad in [
            "", "-1", "-1s", "+1s", "1", "s", "1x", "1.2.3s", ".s", "abc", "1s2",
        ] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_after_prefers_the_explicit_headers() {
        assert_eq!(retry_after(&headers(&[("retry-after", "2")])), ms(2000));
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            ms(1500)
        );
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after", "3"),
                ("x-ratelimit-reset-tokens", "6m0s")
            ])),
            ms(3000)
        );
    }

    #[test]
    fn retry_after_falls_back_to_the_larger_reset() {
        let h = headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(retry_after(&h), ms(360_000));
        let h = headers(&[
            ("x-ratelimit-reset-requests", "-1"),
            ("x-ratelimit-reset-tokens", "644ms"),
        ]);
        assert_eq!(retry_after(&h), ms(644));
    }

    #[test]
    fn retry_after_ignores_unknown_and_zero() {
        assert_eq!(retry_after(&HeaderMap::new()), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "0")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset-requests", "-1")])),
            None
        );
        // A date in the past says nothing useful.
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "99999999")])),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_reads_a_future_http_date() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(120);
        let date = at.to_rfc2822();
        let h = headers(&[("retry-after", date.as_str())]);
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
    }
}
