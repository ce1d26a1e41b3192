//! Semantic checks of a parsed job spec. Each failure is (field path,
//! message); the loader adds the YAML location.

use super::spec::{JobSpec, PromptFormat};

/// Output column names a pass-through column may not reuse.
const OUTPUT_COLUMNS: [&str; 15] = [
    "id",
    "input_file",
    "input_row",
    "status",
    "error_kind",
    "error_message",
    "output_text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "spec_hash",
    "seed",
    "time_to_first_token_ms",
    "latency_ms",
];

type Check = Result<(), (String, String)>;

fn fail(field: &str, message: impl Into<String>) -> Check {
    Err((field.to_string(), message.into()))
}

/// Returns the first problem found, in document order.
pub fn validate(s: &JobSpec) -> Check {
    let i = &s.inputs;
    if i.paths.is_empty() {
        return fail(
            "inputs.paths",
            "must list at least one Parquet file or glob",
        );
    }
    for (n, p) in i.paths.iter().enumerate() {
        if p.trim().is_empty() {
            return fail(&format!("inputs.paths[{n}]"), "must not be empty");
        }
    }
    if i.id_column.trim().is_empty() {
        return fail("inputs.id_column", "must not be empty");
    }
    if i.prompt_column.is_none() && i.messages_column.is_none() {
        return fail(
            "inputs",
            "set `prompt_column` (plain text) and/or `messages_column` (chat messages)",
        );
    }
    if i.prompt_column.is_none() && i.prompt_format == PromptFormat::Raw {
        return fail("inputs.prompt_format", "`raw` needs a `prompt_column`");
    }
    for (n, c) in i.pass_through.iter().enumerate() {
        let field = format!("inputs.pass_through[{n}]");
        if OUTPUT_COLUMNS.contains(&c.as_str()) {
            return fail(&field, format!("`{c}` is an output column name; rename it"));
        }
        if i.pass_through[..n].contains(c) {
            return fail(&field, format!("`{c}` is listed twice"));
        }
    }
    if s.model.trim().is_empty() {
        return fail("model", "must name a GGUF file or a model directory");
    }
    if let Some(h) = &s.model_sha256
        && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return fail("model_sha256", "must be 64 hex digits");
    }
    let g = &s.generation;
    if g.max_new_tokens == 0 {
        return fail("generation.max_new_tokens", "must be at least 1");
    }
    if !(g.temperature >= 0.0 && g.temperature.is_finite()) {
        return fail(
            "generation.temperature",
            format!("must be >= 0 (0 = greedy), got {}", g.temperature),
        );
    }
    if !(g.top_p > 0.0 && g.top_p <= 1.0) {
        return fail(
            "generation.top_p",
            format!("must be in (0, 1], got {}", g.top_p),
        );
    }
    for (n, st) in g.stop.iter().enumerate() {
        if st.is_empty() {
            return fail(
                &format!("generation.stop[{n}]"),
                "stop strings must not be empty",
            );
        }
    }
    let e = &s.engine;
    if e.max_concurrent_rows == 0 {
        return fail("engine.max_concurrent_rows", "must be at least 1");
    }
    if e.max_batch_tokens == 0 {
        return fail("engine.max_batch_tokens", "must be at least 1");
    }
    if e.kv_cache_bytes == 0 {
        return fail("engine.kv_cache_bytes", "must be more than 0");
    }
    let o = &s.output;
    if o.path.trim().is_empty() {
        return fail("output.path", "must not be empty");
    }
    if o.rows_per_part == 0 {
        return fail("output.rows_per_part", "must be at least 1");
    }
    Ok(())
}
