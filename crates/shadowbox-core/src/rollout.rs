//! Rollouts' rules, in one place: the statuses and which transitions are
//! allowed, the strategy's bounds (waves, `min_converged`,
//! `max_rejected`), how the selected devices are cut into waves, and the
//! two gates the wave machine applies (convergence before the next wave,
//! rejections that abort).

use std::fmt;
use std::str::FromStr;

use crate::text_enum::UnknownName;

/// Most `device_ids` a selector may list.
pub const MAX_SELECTOR_DEVICE_IDS: usize = 10_000;

/// Most waves a strategy may have.
pub const MAX_WAVES: usize = 100;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutStatus {
    /// Writing waves, or waiting for a wave to converge.
    Running,
    /// Writing nothing; the wave timeout's clock is stopped.
    Paused,
    /// Every wave written and converged.
    Completed,
    /// Stopped by a gate (too many rejections, a wave timeout).
    Aborted,
    /// Stopped by an operator.
    Cancelled,
    /// The written devices' previous documents restored (or being
    /// restored).
    RolledBack,
}

impl RolloutStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Aborted,
        Self::Cancelled,
        Self::RolledBack,
    ];

    /// The status as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Whether a rollout may go from `self` to `next`: `running` to
    /// `paused`, `cancelled`, `completed` or `aborted`; `paused` to
    /// `running` or `cancelled`; `aborted`, `cancelled` or `completed` to
    /// `rolled_back`. Nothing else.
    pub fn can_become(self, next: Self) -> bool {
        use RolloutStatus as S;
        matches!(
            (self, next),
            (
                S::Running,
                S::Paused | S::Cancelled | S::Completed | S::Aborted
            ) | (S::Paused, S::Running | S::Cancelled)
                | (S::Aborted | S::Cancelled | S::Completed, S::RolledBack)
        )
    }

    /// The statuses `next` may be reached from.
    pub fn sources(next: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_become(next))
            .collect()
    }
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RolloutStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownName {
                got: s.to_owned(),
                expected: "running paused completed aborted cancelled rolled_back",
            })
    }
}

// Stored as `text` (`rollouts.status`). Not a `text_enum!`: serde's
// lowercase spelling of `RolledBack` would not be `rolled_back`.
crate::text_enum::text_column!(
    RolloutStatus,
    |s: &str| s.parse::<RolloutStatus>(),
    |v: &RolloutStatus| v.as_str()
);

/// Why a strategy is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// No waves, too many, not strictly increasing in (0, 1], or not
    /// ending in 1.0.
    #[error(
        "waves must be 1-{MAX_WAVES} strictly increasing cumulative fractions in (0, 1], the last one 1.0"
    )]
    BadWaves,
    /// A fraction (`min_converged`, `max_rejected`) outside [0, 1].
    #[error("{0} must be a fraction between 0 and 1")]
    BadFraction(&'static str),
}

/// Checks a strategy's waves.
pub fn check_waves(waves: &[f64]) -> Result<(), StrategyError> {
    let increasing = waves.windows(2).all(|pair| pair[0] < pair[1]);
    let in_range = waves.iter().all(|f| *f > 0.0 && *f <= 1.0);
    if waves.is_empty() || waves.len() > MAX_WAVES || !increasing || !in_range {
        return Err(StrategyError::BadWaves);
    }
    if waves.last() != Some(&1.0) {
        return Err(StrategyError::BadWaves);
    }
    Ok(())
}

/// Checks that `value` (named `name`) is a fraction in [0, 1].
pub fn check_fraction(name: &'static str, value: f64) -> Result<(), StrategyError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(StrategyError::BadFraction(name))
    }
}

/// How many of `selected` devices each wave ends with, cumulatively:
/// `ceil(fraction x selected)`, so the first wave of a non-empty rollout
/// is never empty, and the last ends with every device. A wave can be
/// empty when its fraction adds less than one device.
pub fn wave_ends(waves: &[f64], selected: i64) -> Vec<i64> {
    waves
        .iter()
        .map(|fraction| {
            // The product is rounded to 1e-9 first, so 0.1 x 30 (which
            // is 3.0000000000000004 in binary) is 3 devices, not 4.
            let exact = (fraction * selected as f64 * 1e9).round() / 1e9;
            (exact.ceil() as i64).clamp(0, selected)
        })
        .collect()
}

/// Tolerance of the gates' comparisons of a count with a fraction of
/// another: 0.95 x 20 is 19.000000000000004 in binary, and 19 of 20 meets
/// a gate of 0.95.
const EPSILON: f64 = 1e-9;

/// The convergence gate: whether `converged` of `counted` devices is at
/// least `min_converged` of them (nothing counted meets it).
pub fn converged_enough(converged: i64, counted: i64, min_converged: f64) -> bool {
    converged as f64 + EPSILON >= min_converged * counted as f64
}

/// The rejection gate: whether `rejected` of `written` devices is more
/// than `max_rejected` of them.
pub fn rejected_too_many(rejected: i64, written: i64, max_rejected: f64) -> bool {
    rejected as f64 > max_rejected * written as f64 + EPSILON
}

#[cfg(test)]
mod tests {
    use super::*;
    use RolloutStatus as S;

    #[test]
    fn transitions_are_exactly_the_contracts() {
        let allowed = [
            (S::Running, S::Paused),
            (S::Running, S::Cancelled),
            (S::Running, S::Completed),
            (S::Running, S::Aborted),
            (S::Paused, S::Running),
            (S::Paused, S::Cancelled),
            (S::Aborted, S::RolledBack),
            (S::Cancelled, S::RolledBack),
            (S::Completed, S::RolledBack),
        ];
        for from in S::ALL {
            for to in S::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert_eq!(S::sources(S::Cancelled), [S::Running, S::Paused]);
        for status in S::ALL {
            assert_eq!(status.as_str().parse::<S>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
    }

    #[test]
    fn waves_are_strictly_increasing_fractions_ending_in_one() {
        for good in [&[1.0][..], &[0.01, 0.1, 1.0], &[0.5, 1.0]] {
            assert_eq!(check_waves(good), Ok(()), "{good:?}");
        }
        for bad in [
            &[][..],
            &[0.5],
            &[0.0, 1.0],
            &[0.5, 0.5, 1.0],
            &[0.6, 0.5, 1.0],
            &[1.0, 1.0],
            &[-0.1, 1.0],
            &[0.5, 1.5],
            &[f64::NAN, 1.0],
        ] {
            assert!(check_waves(bad).is_err(), "{bad:?}");
        }
        let many: Vec<f64> = (1..=101).map(|i| f64::from(i) / 101.0).collect();
        assert!(check_waves(&many).is_err());
        assert!(check_fraction("min_converged", 1.0).is_ok());
        assert!(check_fraction("min_converged", 1.01).is_err());
        assert!(check_fraction("max_rejected", f64::NAN).is_err());
    }

    #[test]
    fn waves_are_cut_by_rounding_up() {
        assert_eq!(wave_ends(&[0.01, 0.1, 1.0], 1000), [10, 100, 1000]);
        assert_eq!(wave_ends(&[0.01, 0.1, 1.0], 5), [1, 1, 5]);
        assert_eq!(wave_ends(&[0.1, 1.0], 30), [3, 30]);
        assert_eq!(wave_ends(&[1.0], 1_000_000), [1_000_000]);
    }

    #[test]
    fn gates_compare_with_a_tolerance() {
        assert!(converged_enough(19, 20, 0.95));
        assert!(!converged_enough(18, 20, 0.95));
        assert!(converged_enough(0, 0, 1.0));
        assert!(converged_enough(0, 10, 0.0));
        assert!(!rejected_too_many(2, 100, 0.02));
        assert!(rejected_too_many(3, 100, 0.02));
        assert!(rejected_too_many(1, 10, 0.0));
        assert!(!rejected_too_many(0, 0, 0.0));
    }
}
