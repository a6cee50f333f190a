//! Medians and tail percentiles of raw samples.

/// The summary of one series of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The median (nearest rank).
    pub p50: f64,
    /// The 99th percentile (nearest rank: the maximum below 100 samples).
    pub p99: f64,
}

/// The nearest-rank percentile `p` (0-100) of sorted samples; `None` when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Median and p99 of unsorted samples; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    Some(Summary { n: sorted.len(), p50: percentile(&sorted, 50.0)?, p99: percentile(&sorted, 99.0)? })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.n, s.p50, s.p99), (200, 100.0, 198.0));
        assert_eq!(summarize(&[3.0, 1.0, 2.0]).unwrap().p50, 2.0);
        assert_eq!(summarize(&[3.0, 1.0, 2.0]).unwrap().p99, 3.0);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }
}
