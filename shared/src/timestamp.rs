//! Timestamps as wagate writes them: RFC 3339. The one formatter behind every time a record,
//! an audit key, a log line or an API answer carries.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `t` as RFC 3339, in the offset it carries, with as many fraction digits as it has
/// (`2026-11-28T19:30:00Z`, `2026-11-28T19:30:00.5Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The fraction digits of a fixed-width timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `.123`
    Millis,
    /// `.123456`
    Micros,
}

/// `t` in UTC, RFC 3339 with a fixed number of fraction digits (`2026-11-28T19:30:00.123Z`):
/// such strings sort as the times do, which is what sort keys need.
pub fn fixed(t: OffsetDateTime, precision: Precision) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let fraction = match precision {
        Precision::Millis => format!("{:03}", t.millisecond()),
        Precision::Micros => format!("{:06}", t.microsecond()),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_width_times_are_utc_and_sort_as_the_times_do() {
        let at = datetime!(2026-11-28 19:30:00.123456 UTC);
        assert_eq!(fixed(at, Precision::Millis), "2026-11-28T19:30:00.123Z");
        assert_eq!(fixed(at, Precision::Micros), "2026-11-28T19:30:00.123456Z");
        assert_eq!(
            fixed(datetime!(2026-01-02 03:04:05 +02:00), Precision::Millis),
            "2026-01-02T01:04:05.000Z"
        );
        let a = fixed(datetime!(2026-01-01 0:00:00.5 UTC), Precision::Micros);
        let b = fixed(datetime!(2026-01-01 0:00:01 UTC), Precision::Micros);
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn rfc3339_is_the_standard_form() {
        assert_eq!(
            rfc3339(datetime!(2026-11-28 19:30:00 UTC)),
            "2026-11-28T19:30:00Z"
        );
        assert_eq!(
            rfc3339(datetime!(2026-11-28 19:30:00.5 UTC)),
            "2026-11-28T19:30:00.5Z"
        );
    }
}
