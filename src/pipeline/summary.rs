//! What `specbatch run` prints when a shard finishes.

use std::collections::BTreeMap;
use std::fmt;

use crate::spec::SpecStats;

/// What `run` prints at the end.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub output: String,
    pub shard: u32,
    pub shards: u32,
    /// Shards without a done record yet (empty once `_SUCCESS` is written).
    pub pending_shards: Vec<u32>,
    pub total: u64,
    pub ok: u64,
    pub error: u64,
    pub skipped: u64,
    pub prompt_tokens: u64,
    /// Prompt tokens taken from shared prefix KV.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub wall_secs: f64,
    /// Error rows of this run by `error_kind`.
    pub error_kinds: BTreeMap<&'static str, u64>,
    /// The first few answers of this run: (id, text).
    pub samples: Vec<(String, String)>,
    /// This run's speculation counters, summed over its engines; `None`
    /// when it did not speculate.
    pub speculation: Option<SpecStats>,
    /// Each engine's device and the rows it was handed, in device order.
    pub engines: Vec<(String, u64)>,
}

/// Answers shown in the summary.
pub(super) const SUMMARY_SAMPLES: usize = 5;
/// Characters of each answer shown in the summary.
const SAMPLE_CHARS: usize = 90;

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shards > 1 {
            writeln!(
                f,
                "shard {} of {} done: output in {}",
                self.shard, self.shards, self.output
            )?;
        } else {
            writeln!(f, "job done: output in {}", self.output)?;
        }
        writeln!(
            f,
            "  rows        {} total: {} ok, {} error, {} skipped (committed by an earlier attempt)",
            self.total, self.ok, self.error, self.skipped
        )?;
        writeln!(
            f,
            "  tokens      {} prompt ({} from shared prefixes), {} generated",
            self.prompt_tokens, self.cached_tokens, self.completion_tokens
        )?;
        writeln!(
            f,
            "  time        {:.1} s, {:.1} generated tok/s",
            self.wall_secs,
            self.completion_tokens as f64 / self.wall_secs.max(1e-9)
        )?;
        if let Some(s) = &self.speculation {
            let by_position: Vec<String> = s
                .acceptance_by_position()
                .iter()
                .map(|a| format!("{a:.2}"))
                .collect();
            writeln!(
                f,
                "  speculation mean accepted length {:.2}, acceptance by position [{}], drafting in {:.0}% of decode steps",
                s.mean_accepted_length(),
                by_position.join(", "),
                100.0 * s.drafting_fraction()
            )?;
        }
        if self.engines.len() > 1 {
            // How the work stealing shared the rows out.
            let shares: Vec<String> = self
                .engines
                .iter()
                .map(|(device, rows)| format!("{device} {rows} rows"))
                .collect();
            writeln!(f, "  engines     {}", shares.join(", "))?;
        }
        if !self.error_kinds.is_empty() {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "  errors      {}", kinds.join(", "))?;
        }
        if !self.pending_shards.is_empty() {
            let list: Vec<String> = self.pending_shards.iter().map(u32::to_string).collect();
            writeln!(
                f,
                "  pending     shard(s) {} still running; the last to finish writes manifest.json and _SUCCESS",
                list.join(", ")
            )?;
        }
        for (id, text) in &self.samples {
            let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown: String = one_line.chars().take(SAMPLE_CHARS).collect();
            let more = if one_line.chars().count() > SAMPLE_CHARS {
                "…"
            } else {
                ""
            };
            writeln!(f, "  {id:<10}  {shown}{more}")?;
        }
        write!(
            f,
            "  read it     duckdb -c \"select id, status, output_text from '{}/data/**/*.parquet'\"",
            self.output
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(speculation: Option<SpecStats>) -> RunSummary {
        RunSummary {
            output: "out/x".into(),
            shard: 0,
            shards: 1,
            pending_shards: Vec::new(),
            total: 4,
            ok: 4,
            error: 0,
            skipped: 0,
            prompt_tokens: 40,
            cached_tokens: 0,
            completion_tokens: 12,
            wall_secs: 2.0,
            error_kinds: BTreeMap::new(),
            samples: Vec::new(),
            speculation,
            engines: vec![("cpu".into(), 4)],
        }
    }

    #[test]
    fn engines_get_one_line_when_there_are_several() {
        assert!(!summary(None).to_string().contains("engines"));
        let mut s = summary(None);
        s.engines = vec![("cuda:0".into(), 3), ("cuda:1".into(), 1)];
        let text = s.to_string();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("engines")).collect();
        assert_eq!(lines, ["  engines     cuda:0 3 rows, cuda:1 1 rows"]);
    }

    #[test]
    fn speculation_gets_one_line_when_present() {
        assert!(!summary(None).to_string().contains("speculation"));
        let mut s = SpecStats {
            decode_steps: 4,
            drafting_steps: 3,
            ..SpecStats::default()
        };
        s.record_round(2, 2);
        s.record_round(2, 0);
        let text = summary(Some(s)).to_string();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("speculation")).collect();
        assert_eq!(
            lines,
            [
                "  speculation mean accepted length 2.00, acceptance by position [0.50, 0.50], drafting in 75% of decode steps"
            ]
        );
    }
}
