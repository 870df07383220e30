//! The gateway's clock, as seen from the node.
//!
//! Envelope timestamps are checked by the gateway against *its* clock (a few minutes
//! back, tens of seconds forward), so the node stamps its messages with gateway time:
//! local time plus an offset. The offset is learned precisely from every `now_ms` the
//! gateway sends (hello and poll responses), and coarsely (1 s resolution) from the
//! HTTP `Date` header when a message was refused as stale or from the future before
//! any `now_ms` was known.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch on this machine.
pub fn local_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Local clock corrected to gateway time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayClock {
    /// Gateway time minus local time, in milliseconds.
    offset_ms: i64,
}

impl GatewayClock {
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Gateway time for a local time.
    pub fn at(&self, local_ms: u64) -> u64 {
        if self.offset_ms >= 0 {
            local_ms.saturating_add(self.offset_ms.unsigned_abs())
        } else {
            local_ms.saturating_sub(self.offset_ms.unsigned_abs())
        }
    }

    /// Gateway time now.
    pub fn now_ms(&self) -> u64 {
        self.at(local_now_ms())
    }

    /// Learns the offset from a gateway timestamp taken while a request that was
    /// sent at local `sent_ms` and answered at local `received_ms` was in flight:
    /// the gateway's `now_ms` is taken to be the midpoint.
    pub fn observe(&mut self, gateway_now_ms: u64, sent_ms: u64, received_ms: u64) {
        let mid = sent_ms / 2 + received_ms / 2 + (sent_ms % 2 + received_ms % 2) / 2;
        self.offset_ms = diff(gateway_now_ms, mid);
    }

    /// Learns the offset from an HTTP `Date` header (whole seconds): the gateway
    /// time is somewhere in `[date, date + 1 s)`; take the middle.
    pub fn observe_http_date(&mut self, date: &str, received_ms: u64) -> bool {
        match parse_http_date(date) {
            Some(secs) => {
                self.offset_ms = diff(secs.saturating_mul(1000).saturating_add(500), received_ms);
                true
            }
            None => false,
        }
    }
}

fn diff(a: u64, b: u64) -> i64 {
    if a >= b {
        i64::try_from(a - b).unwrap_or(i64::MAX)
    } else {
        i64::try_from(b - a).map(|d| -d).unwrap_or(i64::MIN)
    }
}

/// Seconds since the Unix epoch of an RFC 9110 IMF-fixdate, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT` (the form every HTTP server sends).
pub fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1970..=9999).contains(&year) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    // Shift the year to start in March so that the leap day is the last day.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imf_fixdate() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        // Leap day.
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn offset_from_now_ms_and_from_date() {
        let mut c = GatewayClock::default();
        assert_eq!(c.at(1000), 1000);
        // Gateway is 5 s ahead; request took 100 ms.
        c.observe(10_050 + 5_000, 10_000, 10_100);
        assert_eq!(c.offset_ms(), 5_000);
        assert_eq!(c.at(20_000), 25_000);
        // Gateway is 2 s behind.
        c.observe(8_000, 10_000, 10_000);
        assert_eq!(c.offset_ms(), -2_000);
        assert_eq!(c.at(10_000), 8_000);
        assert_eq!(c.at(1_000), 0, "saturates at the epoch");
        // Date header: gateway at 784111777.5 s, we are at 784111700 s.
        assert!(c.observe_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_700_000));
        assert_eq!(c.offset_ms(), 77_500);
        assert!(!c.observe_http_date("garbage", 0));
        assert_eq!(c.offset_ms(), 77_500, "unchanged by a bad header");
    }

    #[test]
    fn now_is_close_to_system_time() {
        let c = GatewayClock::default();
        let a = local_now_ms();
        let b = c.now_ms();
        assert!(b >= a && b - a < 5_000);
    }
}
