//! Durations as people write them, on the command line and in API queries
//! and bodies: `500ms`, `10s`, `5m`, `12h`, `7d`, at most [`MAX`].

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The longest duration accepted: 36500 days (100 years). Every duration
/// is added to or subtracted from the current time (a deadline, a backoff,
/// the cut-off of `--since`, `--older-than` and the outbox retention), and
/// chrono panics, and PostgreSQL refuses, when that leaves the calendar
/// they can represent. A century keeps every such sum far inside both and
/// is longer than any age or timeout that makes sense here.
pub const MAX: Duration = Duration::from_secs(36_500 * 86_400);

/// Renders `duration` as [`parse`] reads it, in the largest unit that
/// holds it whole (`0ms` for zero; below a millisecond is dropped): how
/// the command line shows the crates' `DEFAULT_*` durations.
pub fn format(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let (unit, length) = UNITS
        .into_iter()
        .find(|&(_, length)| millis != 0 && millis % length == 0)
        .unwrap_or(("ms", 1));
    format!("{}{unit}", millis / length)
}

/// Parses a number followed by a unit (`ms`, `s`, `m`, `h`, `d`), refusing
/// anything longer than [`MAX`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a number"));
    }
    let (_, millis_per_unit) = UNITS
        .into_iter()
        .find(|&(name, _)| name == unit)
        .ok_or_else(|| format!("unknown unit {unit:?} (use ms, s, m, h or d)"))?;
    // All digits: a number that does not parse is too large for a u64.
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis)
        .filter(|duration| *duration <= MAX)
        .ok_or_else(|| format!("{text:?} is too long: at most 36500d (100 years)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn formats_in_the_largest_whole_unit_and_parses_back() {
        for (duration, text) in [
            (Duration::ZERO, "0ms"),
            (Duration::from_millis(20), "20ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(604_800), "7d"),
        ] {
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration));
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in ["10", "s", "1.5s", "10 s", "3w", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_more_than_a_century() {
        assert_eq!(parse("36500d"), Ok(MAX));
        assert_eq!(parse("3153600000000ms"), Ok(MAX));
        for long in [
            "36501d",
            "3153600000001ms",
            "100000000d",
            "213503982335d",
            "99999999999999999999d",
        ] {
            let error = parse(long).unwrap_err();
            assert!(error.contains("too long"), "{long}: {error}");
        }
        let max = chrono::Duration::from_std(MAX).unwrap();
        assert!(chrono::Utc::now().checked_sub_signed(max).is_some());
        assert!(chrono::Utc::now().checked_add_signed(max).is_some());
    }
}
