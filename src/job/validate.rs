//! Value rules of a job spec that the types alone cannot express.
//!
//! Invariants: [`JobSpec::validate`] looks only at the spec itself (no files,
//! no model), reports every violation rather than the first, and names each
//! by its field path as written in YAML so the loader can locate it.
//! Checks that need the filesystem or the data (do the inputs exist, do the
//! columns exist and have usable types) belong to the input reader.

use std::collections::HashMap;

use super::spec::{JobSpec, PromptFormat, SpecMethod};
use crate::backend::device::{Device, DeviceSpec};
use crate::io::FIXED_COLUMNS;
use crate::spec::ngram::MAX_DRAFT;

/// One broken rule: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

#[derive(Default)]
struct Checker {
    found: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.found.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    fn non_empty(&mut self, field: impl Into<String>, value: &str) {
        if value.trim().is_empty() {
            self.fail(field, "must not be empty");
        }
    }

    fn at_least_one(&mut self, field: &str, value: u64) {
        if value < 1 {
            self.fail(field, format!("must be at least 1, got {value}"));
        }
    }
}

impl JobSpec {
    /// Checks every value rule (docs/job-spec.md); returns all violations,
    /// in the order the keys appear in the spec's types.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut c = Checker::default();
        self.check_inputs(&mut c);
        c.non_empty("model", &self.model);
        if let Some(sha) = &self.model_sha256
            && !(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            c.fail("model_sha256", "must be 64 hexadecimal digits");
        }
        self.check_generation(&mut c);
        let e = &self.engine;
        c.at_least_one("engine.max_concurrent_rows", e.max_concurrent_rows as u64);
        c.at_least_one("engine.max_batch_tokens", e.max_batch_tokens as u64);
        if e.kv_cache_bytes == 0 {
            c.fail("engine.kv_cache_bytes", "must be greater than 0");
        }
        self.check_devices(&mut c);
        self.check_speculation(&mut c);
        c.non_empty("output.path", &self.output.path);
        c.at_least_one("output.rows_per_part", self.output.rows_per_part as u64);
        if c.found.is_empty() {
            Ok(())
        } else {
            Err(c.found)
        }
    }

    fn check_inputs(&self, c: &mut Checker) {
        let i = &self.inputs;
        if i.paths.is_empty() {
            c.fail(
                "inputs.paths",
                "must list at least one file or glob pattern",
            );
        }
        for (n, p) in i.paths.iter().enumerate() {
            let field = format!("inputs.paths[{n}]");
            if p.trim().is_empty() {
                c.fail(field, "must not be empty");
            } else if p.contains(['*', '?', '['])
                && let Err(e) = glob::Pattern::new(p)
            {
                c.fail(field, format!("invalid glob pattern `{p}`: {e}"));
            }
        }
        c.non_empty("inputs.id_column", &i.id_column);
        match (&i.prompt_column, &i.messages_column) {
            (None, None) => c.fail(
                "inputs.prompt_column",
                "set `prompt_column`, `messages_column` or both",
            ),
            (Some(p), Some(m)) if p == m && !p.trim().is_empty() => c.fail(
                "inputs.messages_column",
                format!("must differ from `prompt_column` (both are `{p}`)"),
            ),
            _ => {}
        }
        if i.prompt_format == PromptFormat::Raw && i.prompt_column.is_none() {
            c.fail(
                "inputs.prompt_format",
                "`raw` applies to plain-text prompts and needs a `prompt_column`",
            );
        }
        if let Some(p) = &i.prompt_column {
            c.non_empty("inputs.prompt_column", p);
        }
        if let Some(m) = &i.messages_column {
            c.non_empty("inputs.messages_column", m);
        }
        let o = &i.overrides;
        for (key, column) in [
            ("max_new_tokens", &o.max_new_tokens),
            ("temperature", &o.temperature),
            ("top_p", &o.top_p),
            ("top_k", &o.top_k),
            ("seed", &o.seed),
            ("reasoning", &o.reasoning),
        ] {
            if let Some(column) = column {
                c.non_empty(format!("inputs.overrides.{key}"), column);
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (n, column) in i.pass_through.iter().enumerate() {
            let field = format!("inputs.pass_through[{n}]");
            if column.trim().is_empty() {
                c.fail(field, "must not be empty");
            } else if let Some(first) = seen.get(column.as_str()) {
                c.fail(
                    field,
                    format!("`{column}` is listed twice (also at pass_through[{first}])"),
                );
            } else if FIXED_COLUMNS.contains(&column.as_str()) {
                c.fail(
                    field,
                    format!(
                        "`{column}` collides with an output column; output columns are: {}",
                        FIXED_COLUMNS.join(", ")
                    ),
                );
            }
            seen.entry(column).or_insert(n);
        }
    }

    /// `cuda:all` needs nothing more; a list must name each device once and
    /// must not mix the CPU with GPUs (docs/job-spec.md says why).
    fn check_devices(&self, c: &mut Checker) {
        let DeviceSpec::List(list) = &self.devices else {
            return;
        };
        if list.is_empty() {
            c.fail(
                "devices",
                "must name at least one device: `[cpu]`, `[cuda:0, ...]` or `cuda:all`",
            );
        }
        let mut seen: HashMap<Device, usize> = HashMap::new();
        for (n, &device) in list.iter().enumerate() {
            if let Some(first) = seen.get(&device) {
                let why = match device {
                    Device::Cpu => "one CPU engine already uses every core (`engine.threads`)",
                    Device::Cuda(_) => "each device runs one engine",
                };
                c.fail(
                    format!("devices[{n}]"),
                    format!("`{device}` is listed twice (also at devices[{first}]): {why}"),
                );
            }
            seen.entry(device).or_insert(n);
        }
        if list.contains(&Device::Cpu) && self.devices.wants_cuda() {
            c.fail(
                "devices",
                "must not mix `cpu` with `cuda:N`: a CPU engine would take work at a fraction \
                 of a GPU's speed and hold up the end of the job, and it would take the cores \
                 that feed the GPUs; list only GPUs, or only `cpu`",
            );
        }
    }

    /// Whether the method exists in this build and whether the model can
    /// run it are known only once the model is loaded; these are the rules
    /// the spec alone decides.
    fn check_speculation(&self, c: &mut Checker) {
        let s = &self.speculation;
        match s.method {
            SpecMethod::None => {}
            SpecMethod::Ngram if !(1..=MAX_DRAFT).contains(&s.max_draft) => c.fail(
                "speculation.max_draft",
                format!(
                    "must be in 1..={MAX_DRAFT} for `ngram` (the n-gram drafter's limit), got {}",
                    s.max_draft
                ),
            ),
            _ => c.at_least_one("speculation.max_draft", s.max_draft as u64),
        }
        match (&s.draft_model, s.method) {
            (None, SpecMethod::DraftModel) => c.fail(
                "speculation.draft_model",
                "required when speculation.method is `draft_model`",
            ),
            (Some(path), SpecMethod::DraftModel) => c.non_empty("speculation.draft_model", path),
            (Some(_), other) => c.fail(
                "speculation.draft_model",
                format!(
                    "set but speculation.method is `{}`; only `draft_model` uses a draft model",
                    other.as_str()
                ),
            ),
            (None, _) => {}
        }
        if matches!(s.method, SpecMethod::DraftModel | SpecMethod::Dspark)
            && self.devices.wants_cuda()
        {
            c.fail(
                "speculation.method",
                format!(
                    "`{}` runs only with `devices: [cpu]`: its drafter runs inside the one CPU \
                     engine; on GPUs use `ngram` or `none`",
                    s.method.as_str()
                ),
            );
        }
        if let Some(path) = &s.calibration {
            if s.method == SpecMethod::None {
                c.fail(
                    "speculation.calibration",
                    "set but speculation.method is `none`",
                );
            } else {
                c.non_empty("speculation.calibration", path);
            }
        }
    }

    fn check_generation(&self, c: &mut Checker) {
        let g = &self.generation;
        c.at_least_one("generation.max_new_tokens", u64::from(g.max_new_tokens));
        if !(g.temperature.is_finite() && g.temperature >= 0.0) {
            c.fail(
                "generation.temperature",
                format!("must be a number >= 0 (0 = greedy), got {}", g.temperature),
            );
        }
        if !(g.top_p.is_finite() && g.top_p > 0.0 && g.top_p <= 1.0) {
            c.fail(
                "generation.top_p",
                format!("must be in (0, 1], got {}", g.top_p),
            );
        }
        for (n, s) in g.stop.iter().enumerate() {
            if s.is_empty() {
                c.fail(format!("generation.stop[{n}]"), "must not be empty");
            }
        }
    }
}
