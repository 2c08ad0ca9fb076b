//! Summaries of repeated measurements: a figure is quoted as its median with its spread.

/// Order statistics of a set of samples.
#[derive(Debug, Clone)]
pub struct Stats {
    sorted: Vec<f64>,
}

impl Stats {
    /// Summarises `samples` (at least one).
    pub fn new(mut samples: Vec<f64>) -> Stats {
        assert!(!samples.is_empty(), "a figure needs at least one sample");
        samples.sort_by(f64::total_cmp);
        Stats { sorted: samples }
    }

    /// How many samples.
    pub fn n(&self) -> usize {
        self.sorted.len()
    }

    /// The `p` quantile (0.0..=1.0), nearest rank.
    pub fn q(&self, p: f64) -> f64 {
        let i = ((p * self.sorted.len() as f64).ceil() as usize).clamp(1, self.sorted.len());
        self.sorted[i - 1]
    }

    /// The median.
    pub fn median(&self) -> f64 {
        self.q(0.5)
    }

    /// The smallest sample.
    pub fn min(&self) -> f64 {
        self.sorted[0]
    }

    /// The largest sample.
    pub fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

/// A number with sensible precision for a table.
pub fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio with three significant digits.
pub fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 1.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.3}×")
    }
}

/// `median (p10–p90)` for latencies, in the unit given.
pub fn spread(s: &Stats, unit: &str) -> String {
    format!(
        "{}{unit} ({}–{})",
        fmt(s.median()),
        fmt(s.q(0.1)),
        fmt(s.q(0.9))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let s = Stats::new((1..=10).map(f64::from).rev().collect());
        assert_eq!(s.median(), 5.0);
        assert_eq!(s.q(0.9), 9.0);
        assert_eq!(s.q(0.99), 10.0);
        assert_eq!(s.min(), 1.0);
        assert_eq!(s.max(), 10.0);
    }
}
