//! A `speculation` section the job cannot honour fails before any work,
//! with exit code 2, a message naming the field and the cause, and nothing
//! written to the output directory: a bad `max_draft`, a missing or
//! mismatched draft model, an unreadable or malformed calibration, a method
//! this build does not implement, and a method the model cannot run.

mod common;

use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use common::{assert_exit_2, specbatch};

/// A job over the quickstart data on `model` with `speculation` as given
/// (the section's body, indented), its output at `dir/out`.
fn job(dir: &Path, model: &str, speculation: &str) -> PathBuf {
    let text = format!(
        "inputs:\n  paths: [{input}]\n  prompt_column: prompt\n  messages_column: messages\n\
model: {model}\nspeculation:\n{speculation}output:\n  path: {out}\n",
        input = common::root().join("datasets/quickstart.parquet").display(),
        out = dir.join("out").display()
    );
    let p = dir.join("job.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `specbatch run` refuses the job with exit code 2, names every needle,
/// and leaves the output directory unmade.
#[track_caller]
fn assert_refused(model: &str, speculation: &str, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = job(tmp.path(), model, speculation);
    let run = specbatch(&["run", spec.to_str().unwrap()]);
    assert_exit_2(&run, needles);
    assert!(
        !tmp.path().join("out").exists(),
        "nothing is written before the job is checked"
    );
}

fn dsv4_tok() -> PathBuf {
    let model = common::model_dir().join("dsv4-tok");
    assert!(
        model.join("config.json").exists(),
        "{} is missing: run scripts/make_dsv4_checkpoints.sh tok",
        model.display()
    );
    model
}

#[test]
fn spec_rules_and_calibration_files_are_refused_before_the_model() {
    // None of these needs the model: the spec or the calibration fails first.
    let model = "models/not-needed.gguf";
    assert_refused(
        model,
        "  method: ngram\n  max_draft: 17\n",
        &["speculation.max_draft", "1..=16", "got 17", "line 8"],
    );
    assert_refused(
        model,
        "  method: draft_model\n",
        &["speculation.draft_model", "required"],
    );
    assert_refused(
        model,
        "  calibration: sts.json\n",
        &["speculation.calibration", "speculation.method is `none`"],
    );

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-sts.json");
    assert_refused(
        model,
        &format!("  method: ngram\n  calibration: {}\n", missing.display()),
        &["speculation.calibration", "no-such-sts.json", "cannot read"],
    );
    let malformed = tmp.path().join("malformed-sts.json");
    std::fs::write(&malformed, "{\"version\": 1, \"temperatures\": [1.0,").unwrap();
    assert_refused(
        model,
        &format!("  method: ngram\n  calibration: {}\n", malformed.display()),
        &["speculation.calibration", "malformed-sts.json", "malformed"],
    );
    let invalid = tmp.path().join("invalid-sts.json");
    std::fs::write(&invalid, "{\"version\": 1, \"temperatures\": [1.0, -2.0]}").unwrap();
    assert_refused(
        model,
        &format!("  method: ngram\n  calibration: {}\n", invalid.display()),
        &[
            "speculation.calibration",
            "invalid-sts.json",
            "finite and > 0",
        ],
    );
}

#[test]
fn methods_a_dense_model_or_this_build_cannot_run_are_refused() {
    let smollm2 = common::model_path(common::SMOLLM2);
    assert_refused(
        &smollm2,
        "  method: dspark\n",
        &[
            "speculation.method: `dspark` needs a DeepSeek-V4 checkpoint with DSpark (mtp.*) tensors",
            "this model has none",
            common::SMOLLM2,
        ],
    );
}

/// A draft model that is missing, of another vocabulary, or not a dense
/// model is refused before any work, naming the field and the file.
#[test]
fn draft_models_that_cannot_draft_for_the_model_are_refused() {
    let smollm2 = common::model_path(common::SMOLLM2);
    let qwen = common::model_path(common::QWEN05);
    assert_refused(
        &smollm2,
        "  method: draft_model\n  draft_model: models/no-such-draft.gguf\n",
        &[
            "speculation.draft_model `models/no-such-draft.gguf`",
            "not found",
        ],
    );
    assert_refused(
        &smollm2,
        &format!("  method: draft_model\n  draft_model: {qwen}\n"),
        &[
            "speculation.draft_model",
            common::QWEN05,
            "its tokenizer differs from the model's",
            "token ids",
        ],
    );
    let dsv4 = dsv4_tok();
    assert_refused(
        &smollm2,
        &format!("  method: draft_model\n  draft_model: {}\n", dsv4.display()),
        &["a draft model must be a dense (llama or qwen2) model, not deepseek_v4"],
    );
}

/// The real pair passes the checks, and `validate` names the draft model.
#[test]
fn a_draft_model_sharing_the_vocabulary_passes_the_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let qwen = common::model_path(common::QWEN05);
    let spec = job(
        tmp.path(),
        &common::model_path(common::QWEN15),
        &format!("  method: draft_model\n  max_draft: 4\n  draft_model: {qwen}\n"),
    );
    let run = specbatch(&["validate", spec.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("speculation ok: draft_model, max_draft 4, draft model "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!("({qwen})")), "{}", run.stdout);
}

#[test]
fn ngram_with_a_calibration_passes_the_checks_on_a_dense_model() {
    let tmp = tempfile::tempdir().unwrap();
    let sts = tmp.path().join("sts.json");
    std::fs::write(&sts, "{\"version\": 1, \"temperatures\": [1.5, 0.75]}").unwrap();
    let spec = job(
        tmp.path(),
        &common::model_path(common::SMOLLM2),
        &format!(
            "  method: ngram\n  max_draft: 4\n  calibration: {}\n",
            sts.display()
        ),
    );
    let run = specbatch(&["validate", spec.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "speculation ok: ngram, max_draft 4, calibration {} (2 position(s))",
            sts.display()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn deepseek_v4_refuses_dspark_without_mtp_tensors() {
    let model = dsv4_tok();
    assert_refused(
        model.to_str().unwrap(),
        "  method: dspark\n",
        &["DSpark (mtp.*) tensors", "this model has none"],
    );
}

/// A copy of `dsv4-tok` (shards linked, not copied) with one `mtp.0.*`
/// tensor of an MTP-1 module added in a shard of its own: a checkpoint
/// without the DSpark config keys, whose `mtp.*` tensors are not a DSpark
/// module.
fn dsv4_with_mtp1() -> tempfile::TempDir {
    let src = dsv4_tok();
    let dst = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".safetensors") {
            std::os::unix::fs::symlink(e.path(), dst.path().join(&name)).unwrap();
        } else {
            std::fs::copy(e.path(), dst.path().join(&name)).unwrap();
        }
    }
    let shard = "model-mtp.safetensors";
    let data = vec![0u8; 2 * 64];
    let view = TensorView::new(Dtype::BF16, vec![64], &data).unwrap();
    safetensors::serialize_to_file(
        [("mtp.0.enorm.weight", view)],
        None,
        &dst.path().join(shard),
    )
    .unwrap();
    let index = dst.path().join("model.safetensors.index.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    v["weight_map"]["mtp.0.enorm.weight"] = shard.into();
    std::fs::write(&index, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    dst
}

#[test]
fn dspark_needs_a_dspark_module_and_a_max_draft_within_its_block() {
    let mtp1 = dsv4_with_mtp1();
    assert_refused(
        mtp1.path().to_str().unwrap(),
        "  method: dspark\n",
        &["DSpark (mtp.*) tensors", "this model has none"],
    );
    let model = common::model_dir().join("dsv4-tok-dspark");
    assert!(
        model.join("config.json").exists(),
        "{} is missing: run scripts/make_dsv4_checkpoints.sh tok-dspark",
        model.display()
    );
    let model = model.to_str().unwrap();
    assert_refused(
        model,
        "  method: dspark\n  max_draft: 6\n",
        &[
            "speculation.max_draft: must be at most 5 for `dspark`",
            "got 6",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let spec = job(tmp.path(), model, "  method: dspark\n  max_draft: 5\n");
    let run = specbatch(&["validate", spec.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("speculation ok: dspark, max_draft 5"),
        "{}",
        run.stdout
    );
}
