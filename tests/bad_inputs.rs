//! Job-level bad input fails fast, before any work, with exit code 2 and a
//! message that names the culprit (field, file, column or tensor); a retry
//! could not help, so schedulers must not retry it.

mod common;

use std::path::{Path, PathBuf};

use specbatch::model::gguf::write::GgufWriter;
use specbatch::model::gguf::{GgufFile, MetaValue};

use common::{assert_exit_2, specbatch};

/// A valid spec over the quickstart data, with `extra` YAML appended.
fn spec(dir: &Path, model: &str, input: &str, out: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "inputs:\n  paths: [{input}]\n  prompt_column: prompt\n  messages_column: messages\n\
model: {model}\n{extra}output:\n  path: {}\n",
        out.display()
    );
    let p = dir.join(format!("job-{}.yaml", text.len()));
    std::fs::write(&p, text).unwrap();
    p
}

fn quickstart_input() -> String {
    common::root()
        .join("datasets/quickstart.parquet")
        .display()
        .to_string()
}

/// Rewrites a GGUF file through our reader and writer, letting `edit`
/// change the metadata and tensor list.
fn rewrite_gguf(
    src: &str,
    dst: &Path,
    edit: impl Fn(&str, MetaValue) -> Option<MetaValue>,
    keep_tensor: impl Fn(&str) -> bool,
) {
    let f = GgufFile::open(Path::new(src)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        if let Some(v) = edit(k, v.clone()) {
            w = w.meta(k, v);
        }
    }
    for t in f.tensor_infos() {
        if keep_tensor(&t.name) {
            let data = f.tensor(&t.name).unwrap().bytes().to_vec();
            w = w.tensor(&t.name, &t.dims, t.qtype, data);
        }
    }
    w.write(dst).unwrap();
}

#[test]
fn bad_specs_inputs_and_models_exit_2_naming_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("out");
    let model = common::model_path(common::SMOLLM2);
    let input = quickstart_input();

    let good = spec(d, &model, &input, &out, "");
    let ok = specbatch(&["validate", good.to_str().unwrap()]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);

    // Spec: unknown key, ill-typed field, value out of range.
    let s = spec(d, &model, &input, &out, "generation:\n  temprature: 0.5\n");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["generation.temprature", "line 7"],
    );
    let s = spec(
        d,
        &model,
        &input,
        &out,
        "engine:\n  max_batch_tokens: many\n",
    );
    assert_exit_2(
        &specbatch(&["run", s.to_str().unwrap()]),
        &["engine.max_batch_tokens"],
    );

    // Spec against model: SmolLM2's ChatML template has no reasoning block.
    let s = spec(
        d,
        &model,
        &input,
        &out,
        "generation:\n  reasoning: think_high\n",
    );
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["generation.reasoning", "think_high", "chatml"],
    );

    // Inputs: missing file, not Parquet, truncated, missing column.
    let missing = d.join("nope.parquet");
    let s = spec(d, &model, missing.to_str().unwrap(), &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["nope.parquet"],
    );
    let not_parquet = d.join("text.parquet");
    std::fs::write(&not_parquet, "id,prompt\n1,hello\n").unwrap();
    let s = spec(d, &model, not_parquet.to_str().unwrap(), &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["text.parquet"],
    );
    let truncated = d.join("truncated.parquet");
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let s = spec(d, &model, truncated.to_str().unwrap(), &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["truncated.parquet"],
    );
    let s = spec(d, &model, &input, &out, "")
        .to_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&s)
        .unwrap()
        .replace("prompt_column: prompt", "prompt_column: question");
    std::fs::write(&s, text).unwrap();
    assert_exit_2(&specbatch(&["validate", &s]), &["question"]);

    // Models: absent, wrong hash, truncated, missing tensor, unsupported
    // type, metadata that disagrees with the tensor shapes.
    let s = spec(d, "/no/such/model.gguf", &input, &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["/no/such/model.gguf"],
    );
    let s = spec(
        d,
        &model,
        &input,
        &out,
        &format!("model_sha256: {}\n", "0".repeat(64)),
    );
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["sha256", &"0".repeat(64)],
    );
    let short = d.join("short.gguf");
    let full = std::fs::read(&model).unwrap();
    std::fs::write(&short, &full[..full.len() / 2]).unwrap();
    let s = spec(d, short.to_str().unwrap(), &input, &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["short.gguf", "truncated"],
    );
    let no_tensor = d.join("no_tensor.gguf");
    rewrite_gguf(
        &model,
        &no_tensor,
        |_, v| Some(v),
        |n| n != "blk.3.ffn_up.weight",
    );
    let s = spec(d, no_tensor.to_str().unwrap(), &input, &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["blk.3.ffn_up.weight"],
    );
    let wrong_shape = d.join("wrong_shape.gguf");
    rewrite_gguf(
        &model,
        &wrong_shape,
        |k, v| {
            Some(if k == "llama.feed_forward_length" {
                MetaValue::U32(1024)
            } else {
                v
            })
        },
        |_| true,
    );
    let s = spec(d, wrong_shape.to_str().unwrap(), &input, &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["blk.0.ffn_gate.weight", "1024"],
    );
    // Unsupported type: patch the first layer's Q weight from Q4_1 (3) to Q4_0 (2).
    let mut patched = full.clone();
    let name = b"blk.0.attn_q.weight";
    let at = patched.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let type_at = at + 4 + 2 * 8;
    assert_eq!(&patched[type_at..type_at + 4], &3u32.to_le_bytes());
    patched[type_at..type_at + 4].copy_from_slice(&2u32.to_le_bytes());
    let bad_type = d.join("bad_type.gguf");
    std::fs::write(&bad_type, patched).unwrap();
    let s = spec(d, bad_type.to_str().unwrap(), &input, &out, "");
    assert_exit_2(
        &specbatch(&["validate", s.to_str().unwrap()]),
        &["blk.0.attn_q.weight", "Q4_0"],
    );
}

#[test]
fn an_output_directory_of_another_job_is_refused_unless_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("out");
    let model = common::model_path(common::SMOLLM2);
    // One small input row keeps the runs short.
    let input = d.join("one.parquet");
    common::duckdb_query(&format!(
        "copy (select * from '{}' where id = 'qs-013' and topic = 'arithmetic') to '{}' (format parquet)",
        quickstart_input(),
        input.display()
    ));
    let input = input.to_str().unwrap();
    let first = spec(d, &model, input, &out, "generation:\n  max_new_tokens: 2\n");
    let r = specbatch(&["run", first.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let other = spec(d, &model, input, &out, "generation:\n  max_new_tokens: 3\n");
    assert_exit_2(
        &specbatch(&["run", other.to_str().unwrap()]),
        &["overwrite"],
    );
    let forced = spec(
        d,
        &model,
        input,
        &out,
        "generation:\n  max_new_tokens: 3\n  seed: 1\n",
    );
    let text = std::fs::read_to_string(&forced).unwrap() + "  overwrite: true\n";
    std::fs::write(&forced, text).unwrap();
    let r = specbatch(&["run", forced.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // The same job again resumes: nothing left to do, nothing duplicated.
    let r = specbatch(&["run", forced.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let n = common::duckdb_query(&format!(
        "select count(*) from '{}/data/**/*.parquet'",
        out.display()
    ));
    assert_eq!(n[0][0].as_i64(), Some(1));
}

/// Devices the spec names but this machine lacks stop `run` and `validate`
/// before any work, naming the cause; the job never runs on the CPU instead.
/// Run on a machine without the CUDA driver library (as CI is).
#[test]
fn devices_that_do_not_exist_exit_2_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("out");
    let model = common::model_path(common::SMOLLM2);
    let input = quickstart_input();
    // The spec with `extra`, through each of `commands`.
    let through = |extra: &str, commands: &[&str]| {
        let s = spec(d, &model, &input, &out, extra);
        let s = s.to_str().unwrap().to_string();
        commands
            .iter()
            .map(|c| specbatch(&[c, &s]))
            .collect::<Vec<_>>()
    };

    let validate = &through("devices: [cpu]\n", &["validate"])[0];
    assert_eq!(validate.code, Some(0), "{}", validate.stderr);
    assert!(
        validate.stdout.contains("devices ok: cpu\n"),
        "{}",
        validate.stdout
    );

    if specbatch::backend::cuda::device::driver_present() {
        eprintln!("skipping the no-driver cases: this machine has a CUDA driver");
    } else {
        for devices in ["[cuda:0]", "[cuda:0, cuda:1]", "cuda:all"] {
            let extra = format!("devices: {devices}\n");
            for r in &through(&extra, &["validate", "run"]) {
                assert_exit_2(r, &["devices: no CUDA driver", "libcuda"]);
                assert!(!r.stdout.contains("spec ok"), "{}", r.stdout);
            }
            assert!(!out.exists(), "{devices}: nothing written before the check");
            // Planning runs no model, so it does not need the GPUs.
            let plan = &through(&extra, &["plan"])[0];
            assert_eq!(plan.code, Some(0), "{devices}: {}", plan.stderr);
            std::fs::remove_dir_all(&out).unwrap();
        }
    }

    for (devices, needles) in [
        ("[]", &["devices:", "at least one device"][..]),
        ("[gpu0]", &["devices[0]", "unknown device `gpu0`"]),
        ("[cuda:0, cuda:0]", &["devices[1]", "listed twice"]),
        ("[cpu, cpu]", &["devices[1]", "listed twice"]),
        ("[cpu, cuda:0]", &["devices:", "must not mix"]),
    ] {
        for r in &through(&format!("devices: {devices}\n"), &["validate", "run"]) {
            assert_exit_2(r, needles);
        }
        assert!(!out.exists(), "{devices}: nothing written");
    }
}
