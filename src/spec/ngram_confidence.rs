//! Confidence of prompt-lookup drafts: estimates of P(accept draft
//! position k | earlier positions accepted, match length n), learned from
//! verification outcomes at two levels.
//!
//! - The job's estimate ([`JobConfidence`]) pools every row's outcomes in
//!   an exponential moving average per (n, k) (weight [`EMA_WEIGHT`] on
//!   each outcome), starting from the prior n / (n + 1) (1/2 for one
//!   token, 4/5 for four).
//! - A row's estimate ([`RowConfidence`]) adds the row's own outcomes, as
//!   exponentially decayed counts, to [`JOB_PSEUDO_TRIALS`] trials at the
//!   job's rate: a row starts at the job's rate and moves to its own as
//!   its trials accumulate.
//!
//! Why both: a row's own outcomes are what predict its next draft (a row
//! whose answer copies its document keeps accepting), but a row alone
//! learns too slowly to matter in a 100-token answer, and rows that start
//! together would all start at the prior. Pooling lets the whole job learn
//! in a few steps that, say, matches in code generation are mostly wrong,
//! so the verify budget stops paying for them.
//!
//! Invariant: every estimate lies in [0, 1] (averages and ratios of
//! outcomes in {0, 1} and priors in (0, 1)).

/// Weight of each new outcome in the job's averages; a row's counts decay
/// by 1 − this per outcome, so they also span about 1 / this trials.
pub const EMA_WEIGHT: f64 = 0.1;
/// Trials at the job's rate in every row's estimate.
pub const JOB_PSEUDO_TRIALS: f64 = 2.0;

/// The prior for a match of `n` tokens.
fn prior(n: usize) -> f64 {
    n as f64 / (n as f64 + 1.0)
}

/// The draft positions a verification outcome decides: position k was a
/// trial iff every earlier one was accepted, so positions up to
/// `accepted + 1`, within the `verified` ones and the `drafted` ones, each
/// with whether it was accepted.
fn trials(drafted: usize, verified: usize, accepted: usize) -> impl Iterator<Item = (usize, bool)> {
    let n = drafted.min(verified).min(accepted + 1);
    (0..n).map(move |k| (k, k < accepted))
}

/// The job's pooled estimates, indexed by match length from `min_n`.
#[derive(Debug, Clone)]
pub struct JobConfidence {
    min_n: usize,
    /// `ema[n - min_n][k]`; positions never tried are at the prior.
    ema: Vec<Vec<f64>>,
}

impl JobConfidence {
    /// Estimates for match lengths `min_n..=max_n`, all at the prior.
    pub fn new(min_n: usize, max_n: usize) -> JobConfidence {
        JobConfidence {
            min_n,
            ema: vec![Vec::new(); max_n + 1 - min_n],
        }
    }

    fn get(&self, n: usize, k: usize) -> f64 {
        let ema = &self.ema[n - self.min_n];
        ema.get(k).copied().unwrap_or(prior(n))
    }

    /// Folds in the outcome of a draft of `drafted` tokens after a match of
    /// `n`, of which `verified` were verified and `accepted` kept.
    pub fn record(&mut self, n: usize, drafted: usize, verified: usize, accepted: usize) {
        let ema = &mut self.ema[n - self.min_n];
        for (k, kept) in trials(drafted, verified, accepted) {
            if ema.len() <= k {
                ema.resize(k + 1, prior(n));
            }
            ema[k] += EMA_WEIGHT * (f64::from(u8::from(kept)) - ema[k]);
        }
    }
}

/// One row's outcomes, as decayed (accepted, trials) counts per (n, k).
#[derive(Debug, Clone)]
pub struct RowConfidence {
    min_n: usize,
    counts: Vec<Vec<(f64, f64)>>,
}

impl RowConfidence {
    /// No outcomes yet, for match lengths `min_n..=max_n`.
    pub fn new(min_n: usize, max_n: usize) -> RowConfidence {
        RowConfidence {
            min_n,
            counts: vec![Vec::new(); max_n + 1 - min_n],
        }
    }

    /// This row's estimate for position `k` after a match of `n`.
    pub fn confidence(&self, job: &JobConfidence, n: usize, k: usize) -> f64 {
        let (kept, tried) = self.counts[n - self.min_n]
            .get(k)
            .copied()
            .unwrap_or((0.0, 0.0));
        (JOB_PSEUDO_TRIALS * job.get(n, k) + kept) / (JOB_PSEUDO_TRIALS + tried)
    }

    /// As [`JobConfidence::record`], for this row's counts.
    pub fn record(&mut self, n: usize, drafted: usize, verified: usize, accepted: usize) {
        let counts = &mut self.counts[n - self.min_n];
        for (k, kept) in trials(drafted, verified, accepted) {
            if counts.len() <= k {
                counts.resize(k + 1, (0.0, 0.0));
            }
            let (a, t) = &mut counts[k];
            *a = *a * (1.0 - EMA_WEIGHT) + f64::from(u8::from(kept));
            *t = *t * (1.0 - EMA_WEIGHT) + 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn only_positions_reached_are_trials() {
        let t: Vec<_> = trials(4, 4, 1).collect();
        assert_eq!(t, vec![(0, true), (1, false)], "position 3 was never tried");
        assert_eq!(trials(4, 4, 4).count(), 4, "all kept: no failed trial");
        assert_eq!(
            trials(4, 0, 0).count(),
            0,
            "a declined draft decides nothing"
        );
        assert_eq!(trials(2, 5, 0).count(), 1);
    }

    #[test]
    fn a_row_starts_at_the_job_rate_and_moves_to_its_own() {
        let mut job = JobConfidence::new(1, 4);
        let mut row = RowConfidence::new(1, 4);
        assert!(
            close(row.confidence(&job, 4, 0), 0.8),
            "the prior for 4 tokens"
        );
        assert!(
            close(row.confidence(&job, 1, 3), 0.5),
            "the prior for 1 token"
        );
        // Another row's failure moves the job's rate, and so this row's.
        job.record(4, 2, 2, 0);
        assert!(close(row.confidence(&job, 4, 0), 0.72));
        assert!(close(row.confidence(&job, 4, 1), 0.8), "never a trial");
        // This row's own success: (2 · 0.72 + 1) / (2 + 1).
        row.record(4, 2, 2, 1);
        assert!(close(row.confidence(&job, 4, 0), 2.44 / 3.0));
        // After many own successes the row sits near 1 whatever the job says.
        for _ in 0..60 {
            row.record(4, 1, 1, 1);
            job.record(4, 1, 1, 0);
        }
        let c = row.confidence(&job, 4, 0);
        assert!(c > 0.8 && c <= 1.0, "{c}");
    }
}
