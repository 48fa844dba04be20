//! Durations on the command line: `500ms`, `10s`, `5m`, `12h`, `7d`.

use std::time::Duration;

/// Parses a number followed by a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
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
    fn refuses_what_it_cannot_read() {
        for bad in ["10", "s", "1.5s", "10 s", "3w", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
