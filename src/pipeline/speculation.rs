//! The `speculation` checks that need more than the spec text: the
//! calibration file, and whether this build and the loaded model can run
//! the method.
//!
//! Invariant: every refusal is a [`SpecError`] (exit code 2) raised while
//! the job is checked, before any output is written. The calibration is read
//! before the model is hashed and loaded, so a bad path fails at once.

use std::path::Path;

use crate::backend::executor::Executor;
use crate::engine::speculation::SpeculationConfig;
use crate::engine::sps_profile::{self, ProfileError};
use crate::job::SpecError;
use crate::job::spec::{JobSpec, SpecMethod, SpeculationSpec};
use crate::model::load::ModelWeights;
use crate::pipeline::BLOCK_SIZE;
use crate::spec::Sts;

/// Reads `speculation.calibration`, if set. A relative path resolves against
/// the working directory, like the spec's other paths.
pub(crate) fn load_calibration(s: &SpeculationSpec) -> Result<Option<Sts>, SpecError> {
    s.calibration
        .as_deref()
        .map(|path| Sts::load(Path::new(path)).map_err(|source| SpecError::Calibration { source }))
        .transpose()
}

/// One line for `specbatch validate`: the method, γ and the calibration.
pub(crate) fn describe(s: &SpeculationSpec, calibration: Option<&Sts>) -> String {
    if s.method == SpecMethod::None {
        return "none".to_string();
    }
    let mut line = format!("{}, max_draft {}", s.method.as_str(), s.max_draft);
    if let (Some(path), Some(sts)) = (&s.calibration, calibration) {
        line += &format!(
            ", calibration {path} ({} position(s))",
            sts.temperatures().len()
        );
    }
    line
}

/// The engine's speculation for a checked job: `None` for method `none`,
/// otherwise γ, the calibration and the step rate of this backend
/// ([`sps_profile::for_model`]).
pub(crate) fn engine_speculation<E: Executor + ?Sized>(
    spec: &JobSpec,
    calibration: Option<Sts>,
    exec: &mut E,
    model_hash: &str,
) -> Result<Option<SpeculationConfig>, ProfileError> {
    if spec.speculation.method == SpecMethod::None {
        return Ok(None);
    }
    let max_draft = spec.speculation.max_draft;
    let e = &spec.engine;
    let max_tokens = sps_profile::probe_limit(e.max_batch_tokens, e.max_concurrent_rows, max_draft);
    let sps = sps_profile::for_model(exec, BLOCK_SIZE, max_tokens, model_hash)?;
    Ok(Some(SpeculationConfig {
        max_draft,
        sps,
        calibration,
    }))
}

/// What the method checks need to know about the model.
#[derive(Debug, Clone, Copy)]
enum Target {
    Dense,
    DeepseekV4 { mtp_stages: usize },
}

impl Target {
    fn of(weights: &ModelWeights) -> Target {
        match weights {
            ModelWeights::Dense(_) => Target::Dense,
            ModelWeights::DeepseekV4(w) => Target::DeepseekV4 {
                mtp_stages: w.mtp_stages,
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
    method_refusal(spec.speculation.method, Target::of(weights), &spec.model)
}

fn method_refusal(method: SpecMethod, target: Target, model: &str) -> Result<(), SpecError> {
    const FIELD: &str = "speculation.method";
    let mismatch = |message: &str| SpecError::ModelMismatch {
        field: FIELD,
        model: model.to_string(),
        message: message.to_string(),
    };
    let not_implemented = || SpecError::NotImplemented {
        field: FIELD,
        message: format!("`{}` is not implemented yet", method.as_str()),
    };
    match (method, target) {
        (SpecMethod::None | SpecMethod::Ngram, _) => Ok(()),
        (SpecMethod::DraftModel, _) => Err(not_implemented()),
        (SpecMethod::Dspark, Target::DeepseekV4 { mtp_stages }) if mtp_stages > 0 => {
            Err(not_implemented())
        }
        (SpecMethod::Dspark, _) => Err(mismatch(
            "`dspark` needs a DeepSeek-V4 checkpoint with DSpark (mtp.*) tensors; this model has none",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSV4_WITH_MTP: Target = Target::DeepseekV4 { mtp_stages: 1 };
    const DSV4_WITHOUT_MTP: Target = Target::DeepseekV4 { mtp_stages: 0 };

    fn refusal(method: SpecMethod, target: Target) -> Option<String> {
        method_refusal(method, target, "m")
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn none_and_ngram_run_everywhere() {
        for target in [Target::Dense, DSV4_WITH_MTP, DSV4_WITHOUT_MTP] {
            assert_eq!(refusal(SpecMethod::None, target), None);
            assert_eq!(refusal(SpecMethod::Ngram, target), None);
        }
    }

    #[test]
    fn draft_model_is_not_implemented_on_any_model() {
        for target in [Target::Dense, DSV4_WITH_MTP] {
            assert_eq!(
                refusal(SpecMethod::DraftModel, target).as_deref(),
                Some("speculation.method: `draft_model` is not implemented yet")
            );
        }
    }

    #[test]
    fn dspark_needs_mtp_tensors_before_it_is_not_implemented() {
        for target in [Target::Dense, DSV4_WITHOUT_MTP] {
            let e = refusal(SpecMethod::Dspark, target).unwrap();
            assert_eq!(
                e,
                "speculation.method: `dspark` needs a DeepSeek-V4 checkpoint with DSpark \
                 (mtp.*) tensors; this model has none (model `m`)"
            );
        }
        assert_eq!(
            refusal(SpecMethod::Dspark, DSV4_WITH_MTP).as_deref(),
            Some("speculation.method: `dspark` is not implemented yet")
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
            describe(&spec(&good), Some(&sts)),
            format!(
                "ngram, max_draft 5, calibration {} (2 position(s))",
                good.display()
            )
        );
        assert_eq!(describe(&SpeculationSpec::default(), None), "none");
    }
}
