//! The `speculation` checks that need more than the spec text (the
//! calibration file, the draft model, whether this build and the loaded
//! model can run the method) and the engine's [`Speculator`] for a checked
//! job.
//!
//! Invariant: every refusal is a [`SpecError`] (exit code 2) raised while
//! the job is checked, before any output is written. The calibration is read
//! before the model is hashed and loaded, so a bad path fails at once.

use std::path::Path;

use super::{BLOCK_SIZE, cpu_executor, kv_bytes_per_token};
use crate::backend::device::Device;
use crate::backend::executor::Executor;
use crate::backend::resolve::{DeviceError, ResolvedDevice};
use crate::engine::draft_model::{DraftCosts, DraftModel};
use crate::engine::drafter::{Drafter, NgramDrafters};
use crate::engine::dspark_drafter::DsparkDrafter;
use crate::engine::speculation::{SpeculationConfig, Speculator};
use crate::engine::sps_profile::{self, ProbeModel, ProfileError};
use crate::job::SpecError;
use crate::job::spec::{JobSpec, SpecMethod, SpeculationSpec};
use crate::model::load::{LoadedModel, ModelWeights, load_model, model_sha256};
use crate::spec::{SpsTable, Sts};

/// A checked `speculation.draft_model` and its file hash (which keys its
/// step-rate cache).
pub(crate) struct DraftSource {
    pub model: LoadedModel,
    pub sha256: String,
}

/// Loads `speculation.draft_model` for `target`, if the method uses one: it
/// must load, be a dense model (the drafter's KV is addressed by position,
/// so rejected drafts need no rollback), and share the target's vocabulary
/// id for id, since draft ids are verified as target ids.
pub(crate) fn load_draft_model(
    spec: &SpeculationSpec,
    target: &LoadedModel,
) -> Result<Option<DraftSource>, SpecError> {
    let (SpecMethod::DraftModel, Some(path)) = (spec.method, &spec.draft_model) else {
        return Ok(None);
    };
    let refuse = |message: String| SpecError::DraftModel {
        path: path.clone(),
        message,
    };
    let model = load_model(path).map_err(|e| refuse(e.to_string()))?;
    let sha256 = model_sha256(path).map_err(|e| refuse(e.to_string()))?;
    let Some(draft) = model.weights.as_dense() else {
        return Err(refuse(format!(
            "a draft model must be a dense (llama or qwen2) model, not {}",
            model.weights.arch_name()
        )));
    };
    if let Some(why) = model.tokenizer.vocabulary_differs(&target.tokenizer) {
        return Err(refuse(format!(
            "its tokenizer differs from the model's ({why}), so its token ids mean other text"
        )));
    }
    let target_vocab = match &target.weights {
        ModelWeights::Dense(w) => w.config.vocab_size,
        ModelWeights::DeepseekV4(w) => w.config.vocab_size,
    };
    if draft.config.vocab_size != target_vocab {
        return Err(refuse(format!(
            "its output layer has {} rows, the model's {target_vocab}",
            draft.config.vocab_size
        )));
    }
    Ok(Some(DraftSource { model, sha256 }))
}

/// Splits `kv_cache_bytes` between the target and the draft model in
/// proportion to their KV bytes per token, so both hold the same number of
/// tokens and together stay within the job's budget. Without a draft model
/// the target gets it all.
pub(crate) fn kv_split(
    kv_cache_bytes: u64,
    target: &ModelWeights,
    draft: Option<&ModelWeights>,
) -> (u64, u64) {
    let Some(draft) = draft else {
        return (kv_cache_bytes, 0);
    };
    let (t, d) = (
        kv_bytes_per_token(target) as u128,
        kv_bytes_per_token(draft) as u128,
    );
    let target_share = (kv_cache_bytes as u128 * t / (t + d)) as u64;
    (target_share, kv_cache_bytes - target_share)
}

/// Reads `speculation.calibration`, if set. A relative path resolves against
/// the working directory, like the spec's other paths.
pub(crate) fn load_calibration(s: &SpeculationSpec) -> Result<Option<Sts>, SpecError> {
    s.calibration
        .as_deref()
        .map(|path| Sts::load(Path::new(path)).map_err(|source| SpecError::Calibration { source }))
        .transpose()
}

/// One line for `specbatch validate`: the method, γ, the draft model and
/// the calibration.
pub(crate) fn describe(
    s: &SpeculationSpec,
    calibration: Option<&Sts>,
    draft: Option<&DraftSource>,
) -> String {
    if s.method == SpecMethod::None {
        return "none".to_string();
    }
    let mut line = format!("{}, max_draft {}", s.method.as_str(), s.max_draft);
    if let Some(d) = draft {
        line += &format!(", draft model {} ({})", d.model.name, d.model.path);
    }
    if let (Some(path), Some(sts)) = (&s.calibration, calibration) {
        line += &format!(
            ", calibration {path} ({} position(s))",
            sts.temperatures().len()
        );
    }
    line
}

/// The engine's speculation for a checked job: `None` for method `none`,
/// otherwise the drafter, γ, the calibration and the step rate of this
/// backend on `device` ([`sps_profile`]; measured together with the draft
/// model's when there is one). A draft model runs on its own CPU backend
/// with `draft_kv_bytes` of KV ([`kv_split`]).
pub(crate) fn engine_speculation<E: Executor + ?Sized>(
    spec: &JobSpec,
    calibration: Option<Sts>,
    exec: &mut E,
    device: &Device,
    model_hash: &str,
    draft: Option<(DraftSource, u64)>,
) -> Result<Option<Speculator>, ProfileError> {
    if spec.speculation.method == SpecMethod::None {
        return Ok(None);
    }
    let max_draft = spec.speculation.max_draft;
    let e = &spec.engine;
    let target = ProbeModel {
        exec,
        device,
        max_tokens: sps_profile::probe_limit(e.max_batch_tokens, e.max_concurrent_rows, max_draft),
        model_sha256: model_hash,
    };
    let (sps, drafter): (SpsTable, Box<dyn Drafter>) = match draft {
        Some((source, kv_bytes)) => {
            let mut draft_exec =
                cpu_executor(source.model.weights, kv_bytes, e.max_concurrent_rows, false)?;
            // A draft round feeds one token per drafting row.
            let draft = ProbeModel {
                exec: &mut draft_exec,
                device: &Device::Cpu,
                max_tokens: e.max_concurrent_rows,
                model_sha256: &source.sha256,
            };
            let (sps, draft_sps) = sps_profile::for_target_and_draft(target, draft, BLOCK_SIZE)?;
            let costs = DraftCosts {
                target: sps.clone(),
                draft: draft_sps,
            };
            let drafter =
                DraftModel::new(draft_exec, BLOCK_SIZE, e.max_batch_tokens, max_draft, costs);
            (sps, Box::new(drafter))
        }
        None => {
            let sps = sps_profile::for_model(target, BLOCK_SIZE)?;
            let drafter: Box<dyn Drafter> = if spec.speculation.method == SpecMethod::Dspark {
                Box::new(DsparkDrafter::default())
            } else {
                Box::new(NgramDrafters::default())
            };
            (sps, drafter)
        }
    };
    let cfg = SpeculationConfig {
        max_draft,
        sps,
        calibration,
    };
    Ok(Some(Speculator::new(cfg, drafter)))
}

/// `draft_model` and `dspark` draft inside one CPU engine: any other list
/// of engines is refused before any work. The spec's own rule refuses them
/// with GPUs; this also covers [`RunOptions::engines`](super::RunOptions).
/// A job that only plans has no engines and passes.
pub(crate) fn check_engine_speculation(
    spec: &JobSpec,
    devices: &[ResolvedDevice],
) -> Result<(), DeviceError> {
    let method = spec.speculation.method;
    let one_cpu = matches!(
        devices,
        [] | [ResolvedDevice {
            device: Device::Cpu,
            ..
        }]
    );
    if matches!(method, SpecMethod::DraftModel | SpecMethod::Dspark) && !one_cpu {
        return Err(DeviceError::SpeculationNeedsOneCpuEngine {
            method: method.as_str(),
        });
    }
    Ok(())
}

/// What the method checks need to know about the model.
#[derive(Debug, Clone, Copy)]
enum Target {
    Dense,
    /// `dspark_block`: the DSpark module's block size, when it has one.
    DeepseekV4 {
        dspark_block: Option<usize>,
    },
}

impl Target {
    fn of(weights: &ModelWeights) -> Target {
        match weights {
            ModelWeights::Dense(_) => Target::Dense,
            ModelWeights::DeepseekV4(w) => Target::DeepseekV4 {
                dspark_block: w
                    .dspark
                    .as_ref()
                    .and(w.config.dspark.as_ref())
                    .map(|d| d.block_size),
            },
        }
    }
}

/// The job-level rule, checked once the model is loaded: a method this build
/// cannot run on this model fails the job rather than silently running
/// without speculation.
pub(crate) fn check_job_speculation(
    spec: &JobSpec,
    weights: &ModelWeights,
) -> Result<(), SpecError> {
    let s = &spec.speculation;
    method_refusal(s.method, s.max_draft, Target::of(weights), &spec.model)
}

fn method_refusal(
    method: SpecMethod,
    max_draft: usize,
    target: Target,
    model: &str,
) -> Result<(), SpecError> {
    let mismatch = |field: &'static str, message: String| SpecError::ModelMismatch {
        field,
        model: model.to_string(),
        message,
    };
    match (method, target) {
        (SpecMethod::None | SpecMethod::Ngram | SpecMethod::DraftModel, _) => Ok(()),
        (
            SpecMethod::Dspark,
            Target::DeepseekV4 {
                dspark_block: Some(block),
            },
        ) => {
            if max_draft > block {
                return Err(mismatch(
                    "speculation.max_draft",
                    format!(
                        "must be at most {block} for `dspark` on this model (its DSpark block \
                         drafts {block} tokens), got {max_draft}"
                    ),
                ));
            }
            Ok(())
        }
        (SpecMethod::Dspark, _) => Err(mismatch(
            "speculation.method",
            "`dspark` needs a DeepSeek-V4 checkpoint with DSpark (mtp.*) tensors; this model \
             has none"
                .to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSV4_WITH_MTP: Target = Target::DeepseekV4 {
        dspark_block: Some(5),
    };
    const DSV4_WITHOUT_MTP: Target = Target::DeepseekV4 { dspark_block: None };

    fn refusal(method: SpecMethod, target: Target) -> Option<String> {
        method_refusal(method, 5, target, "m")
            .err()
            .map(|e| e.to_string())
    }

    /// A draft model's own fitness (dense, same vocabulary) is checked when
    /// it is loaded, not by the method rule.
    #[test]
    fn none_ngram_and_draft_model_pass_the_method_rule_everywhere() {
        for target in [Target::Dense, DSV4_WITH_MTP, DSV4_WITHOUT_MTP] {
            assert_eq!(refusal(SpecMethod::None, target), None);
            assert_eq!(refusal(SpecMethod::Ngram, target), None);
            assert_eq!(refusal(SpecMethod::DraftModel, target), None);
        }
    }

    #[test]
    fn dspark_needs_the_draft_module_and_a_max_draft_within_its_block() {
        for target in [Target::Dense, DSV4_WITHOUT_MTP] {
            let e = refusal(SpecMethod::Dspark, target).unwrap();
            assert_eq!(
                e,
                "speculation.method: `dspark` needs a DeepSeek-V4 checkpoint with DSpark \
                 (mtp.*) tensors; this model has none (model `m`)"
            );
        }
        assert_eq!(refusal(SpecMethod::Dspark, DSV4_WITH_MTP), None);
        let e = method_refusal(SpecMethod::Dspark, 6, DSV4_WITH_MTP, "m")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "speculation.max_draft: must be at most 5 for `dspark` on this model (its DSpark \
             block drafts 5 tokens), got 6 (model `m`)"
        );
    }

    #[test]
    fn calibration_errors_name_the_field_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |path: &Path| SpeculationSpec {
            method: SpecMethod::Ngram,
            calibration: Some(path.display().to_string()),
            ..SpeculationSpec::default()
        };
        assert!(
            load_calibration(&SpeculationSpec::default())
                .unwrap()
                .is_none()
        );

        let missing = dir.path().join("missing.json");
        let e = load_calibration(&spec(&missing)).unwrap_err().to_string();
        assert!(e.starts_with("speculation.calibration: "), "{e}");
        assert!(e.contains("missing.json"), "{e}");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"version": 1, "temperatures": [0.0]}"#).unwrap();
        let e = load_calibration(&spec(&bad)).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("invalid"), "{e}");

        let good = dir.path().join("good.json");
        Sts::new(vec![1.5, 0.75]).unwrap().save(&good).unwrap();
        let sts = load_calibration(&spec(&good)).unwrap().unwrap();
        assert_eq!(sts.temperatures(), &[1.5, 0.75]);
        assert_eq!(
            describe(&spec(&good), Some(&sts), None),
            format!(
                "ngram, max_draft 5, calibration {} (2 position(s))",
                good.display()
            )
        );
        assert_eq!(describe(&SpeculationSpec::default(), None, None), "none");
    }
}
