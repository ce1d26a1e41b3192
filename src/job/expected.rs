//! What each spec field accepts, in words, for "expected X, got Y" errors.
//!
//! Invariant: every field of the spec types has an entry (a test walks a
//! spec that sets every key); a missing entry only costs the friendlier
//! wording, the YAML library's own message is used instead.

/// `inputs.paths[3]` -> `inputs.paths[]`, so list items share one entry.
fn generic(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for ch in path.chars() {
        match ch {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(ch),
        }
    }
    out
}

const STRING: &str = "a string";
const COLUMN: &str = "a column name (a string)";
const COLUMNS: &str = "a list of column names";
const COUNT: &str = "a whole number";
const MAPPING: &str = "a mapping";

/// The accepted form of the field at `path`, if it is a spec field.
pub(crate) fn expected(path: &str) -> Option<&'static str> {
    Some(match generic(path).as_str() {
        "" => "a mapping with at least `inputs` and `output`",
        "inputs" | "generation" | "engine" | "speculation" | "output" | "inputs.overrides" => {
            MAPPING
        }
        "inputs.paths" => "a list of file paths or glob patterns",
        "inputs.paths[]" => "a file path or glob pattern (a string)",
        "inputs.id_column"
        | "inputs.prompt_column"
        | "inputs.messages_column"
        | "inputs.overrides.max_new_tokens"
        | "inputs.overrides.temperature"
        | "inputs.overrides.top_p"
        | "inputs.overrides.top_k"
        | "inputs.overrides.seed"
        | "inputs.overrides.reasoning"
        | "inputs.pass_through[]" => COLUMN,
        "inputs.pass_through" => COLUMNS,
        "inputs.prompt_format" => "one of chat, raw",
        "model" => "a path to a GGUF file or model directory (a string)",
        "model_sha256" => "64 hexadecimal digits (a string)",
        "generation.max_new_tokens"
        | "generation.top_k"
        | "generation.seed"
        | "engine.threads"
        | "engine.max_concurrent_rows"
        | "engine.max_batch_tokens"
        | "speculation.max_draft"
        | "output.rows_per_part" => COUNT,
        "generation.temperature" | "generation.top_p" => "a number",
        "generation.stop" => "a list of strings",
        "generation.stop[]" | "generation.system_prompt" | "output.path" => STRING,
        "engine.kv_cache_bytes" => "a byte size: an integer or a string like `4GiB`",
        "generation.reasoning" => "one of non_think, think_high, think_max",
        "speculation.method" => "one of none, ngram, draft_model, dspark",
        "speculation.draft_model" => "a path to a GGUF file or model directory (a string)",
        "speculation.calibration" => "a path to a calibration file (a string)",
        "output.compression" => "one of zstd, snappy, none",
        "output.overwrite" => "true or false",
        "devices" => "a list of devices (`[cpu]`, `[cuda:0, cuda:1]`) or `cuda:all`",
        "devices[]" => "`cpu` or `cuda:N` (a string)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_share_an_entry() {
        assert_eq!(generic("inputs.paths[12]"), "inputs.paths[]");
        assert_eq!(generic("a[1][2].b"), "a[][].b");
        assert_eq!(expected("generation.stop[4]"), Some(STRING));
        assert_eq!(expected("nonsense"), None);
    }
}
