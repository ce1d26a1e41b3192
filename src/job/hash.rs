//! The spec hash: a stable identity for "what results this job produces".
//!
//! It covers `inputs`, `model` and `generation`, the parts that decide which
//! rows exist and what text each gets. `engine` (threads, batch limits, KV
//! budget), `devices` (where the engines run) and `output` (where and how
//! parts are written) are left out: the engine is batch-invariant, so they
//! change speed and layout, never a row's result, and a job must resume
//! after e.g. a change of thread count or of GPUs.
//! `model_sha256` is left out too: it only guards, a mismatch fails the job.
//! So is `speculation`: verification is lossless, so each row's answer is
//! drawn from the same distribution with or without it, and turning it on
//! or off must not orphan a half-finished output.
//!
//! Invariants: the hash is sha256 over a versioned prefix plus a canonical
//! JSON text (object keys sorted at every level, no whitespace, defaults
//! filled in because it is computed from the typed spec), so comments, key
//! order, layout, and writing a default explicitly never change it. Paths
//! are hashed as written, not resolved.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::spec::{GenerationSpec, InputSpec, JobSpec};

/// Bumped when the hashed parts change meaning, so old outputs are not
/// mistaken for current ones.
const HASH_DOMAIN: &str = "specbatch-spec-hash-v1\n";

#[derive(Serialize)]
struct Hashed<'a> {
    inputs: &'a InputSpec,
    model: &'a str,
    generation: &'a GenerationSpec,
}

impl JobSpec {
    /// Lower-case hex sha256 identifying the results this spec produces.
    pub fn spec_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN.as_bytes());
        h.update(self.canonical_json().as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The canonical JSON text the hash is taken over.
    pub fn canonical_json(&self) -> String {
        let parts = Hashed {
            inputs: &self.inputs,
            model: &self.model,
            generation: &self.generation,
        };
        // Only non-string map keys or a failing Serialize impl can make this
        // fail; these types have neither.
        let value = serde_json::to_value(parts).expect("spec types always serialize to JSON");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
