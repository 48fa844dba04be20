//! Durations on the command line: `500ms`, `10s`, `5m`, `12h`, `7d`.

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

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

/// Parses a number followed by a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let (_, millis_per_unit) = UNITS
        .into_iter()
        .find(|&(name, _)| name == unit)
        .ok_or_else(|| format!("unknown unit {unit:?} (use ms, s, m, h or d)"))?;
    Ok(Duration::from_millis(
        number.saturating_mul(millis_per_unit),
    ))
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
}
