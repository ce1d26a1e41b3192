//! `specbatch synth-model`: the synthetic models have the real models'
//! tensor directory and configuration (checked against the real files in
//! `models/`), load and run a job end to end, and are a function of the seed.

mod common;

use std::path::{Path, PathBuf};

use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::executor::{Executor, ForwardBatch, SeqChunk};
use specbatch::model::gguf::GgufFile;
use specbatch::model::load::{LoadedModel, load_model, model_sha256};
use specbatch::model::synth::{SynthShape, plan};

fn real_file(shape: SynthShape) -> String {
    common::model_path(match shape {
        SynthShape::Qwen25_1_5b => common::QWEN15,
        SynthShape::Qwen25_0_5b => common::QWEN05,
        SynthShape::Smollm2_135m => common::SMOLLM2,
    })
}

/// Runs `specbatch synth-model` into `dir` and returns the file written.
fn synth(dir: &Path, shape: SynthShape, layers: usize, seed: u64) -> PathBuf {
    let out = dir.join(format!("{}-{layers}-{seed}.gguf", shape.name()));
    let run = common::specbatch(&[
        "synth-model",
        "--shape",
        shape.name(),
        "--layers",
        &layers.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "synth-model failed: {}", run.stderr);
    out
}

type Entry = (String, Vec<u64>, specbatch::model::quant::QType);

fn directory(path: &str) -> Vec<Entry> {
    GgufFile::open(Path::new(path))
        .unwrap()
        .tensor_infos()
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone(), t.qtype))
        .collect()
}

fn in_first_layers(name: &str, layers: usize) -> bool {
    match name.strip_prefix("blk.") {
        Some(rest) => rest.split('.').next().unwrap().parse::<usize>().unwrap() < layers,
        None => true,
    }
}

#[test]
fn the_plan_is_the_real_tensor_directory() {
    for shape in SynthShape::ALL {
        let real = directory(&real_file(shape));
        let planned: Vec<Entry> = plan(shape, None)
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.dims, t.qtype))
            .collect();
        assert_eq!(planned.len(), real.len(), "{}: tensor count", shape.name());
        for (p, r) in planned.iter().zip(&real) {
            assert_eq!(p, r, "{}: tensor (name, dims, type)", shape.name());
        }
    }
}

fn assert_same_model(shape: SynthShape, synth: &LoadedModel, real: &LoadedModel, layers: usize) {
    let name = shape.name();
    let mut want = real.weights.as_dense().unwrap().config.clone();
    want.n_layers = layers;
    assert_eq!(
        synth.weights.as_dense().unwrap().config,
        want,
        "{name}: config"
    );
    let (st, rt) = (&synth.tokenizer, &real.tokenizer);
    assert_eq!(st.vocab_size(), rt.vocab_size(), "{name}: vocabulary size");
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        let id = rt.token_to_id(special);
        assert!(id.is_some(), "{name}: the real file has {special}");
        assert_eq!(st.token_to_id(special), id, "{name}: id of {special}");
        assert_eq!(
            st.is_eos(id.unwrap()),
            rt.is_eos(id.unwrap()),
            "{name}: eos {special}"
        );
    }
    assert_eq!(
        synth.chat, real.chat,
        "{name}: chat template and system prompt"
    );
    // A chat prompt encodes its markers as the same control ids.
    let text = "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n";
    let ids = st.encode(text).unwrap();
    assert_eq!(ids[0], rt.token_to_id("<|im_start|>").unwrap());
    assert_eq!(st.decode(&ids).unwrap(), "user\nhello there\nassistant\n");
}

#[test]
fn two_layer_models_load_with_the_real_config_tokenizer_and_layer_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let layers = 2;
    for shape in SynthShape::ALL {
        let real_path = real_file(shape);
        let path = synth(dir.path(), shape, layers, 0);
        let path = path.to_str().unwrap();
        let want: Vec<Entry> = directory(&real_path)
            .into_iter()
            .filter(|(n, _, _)| in_first_layers(n, layers))
            .collect();
        assert_eq!(directory(path), want, "{}: tensor directory", shape.name());
        let synth = load_model(path).unwrap();
        let real = load_model(&real_path).unwrap();
        assert_same_model(shape, &synth, &real, layers);
    }
}

#[test]
fn a_generated_model_gives_finite_logits_and_runs_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(dir.path(), SynthShape::Smollm2_135m, 2, 3);
    let m = load_model(path.to_str().unwrap()).unwrap();
    let prompt = m
        .tokenizer
        .encode(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        )
        .unwrap();
    let mut exec = CpuDenseExecutor::new(m.weights.into_dense().unwrap(), 64 << 20, 16);
    let logits = exec
        .forward(&ForwardBatch {
            seqs: vec![SeqChunk {
                tokens: prompt.clone(),
                start_pos: 0,
                seq_id: 0,
                block_table: (0..prompt.len().div_ceil(16) as u32).collect(),
                logits_for: 1,
            }],
        })
        .unwrap()
        .remove(0);
    assert!(logits.iter().all(|v| v.is_finite()), "finite logits");
    let (lo, hi) = logits
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        hi - lo > 1.0 && hi - lo < 1000.0,
        "logits spread {lo}..{hi}"
    );

    // The quickstart job (greedy; the binary runs from the crate root, so
    // its relative input path holds) on the synthetic model.
    let spec = std::fs::read_to_string(common::root().join("jobs/quickstart.yaml")).unwrap();
    let spec: String = spec
        .lines()
        .map(|l| match l.starts_with("model:") {
            true => format!("model: {}\n", path.display()),
            false => format!("{l}\n"),
        })
        .collect();
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, spec).unwrap();
    let out = dir.path().join("out");
    let run = common::specbatch(&[
        "run",
        job.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "the job finishes: {}", run.stderr);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let count = |k: &str| manifest["counts"][k].as_i64().unwrap();
    assert_eq!(count("ok") + count("error"), count("total"));
    assert_eq!(
        count("error"),
        8,
        "only the quickstart's 8 bad rows fail: {manifest}"
    );
    assert!(manifest["completion_tokens"].as_i64().unwrap() > 0);
}

#[test]
fn the_seed_decides_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let shape = SynthShape::Smollm2_135m;
    let hash = |seed, sub: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        model_sha256(synth(&d, shape, 1, seed).to_str().unwrap()).unwrap()
    };
    let a = hash(7, "a");
    assert_eq!(a, hash(7, "b"), "same seed, same bytes");
    assert_ne!(a, hash(8, "c"), "another seed, other bytes");
}

#[test]
fn bad_requests_exit_2_naming_the_problem() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("m.gguf");
    let file = file.to_str().unwrap();
    let run = common::specbatch(&["synth-model", "--shape", "gpt-5", "--out", file]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("qwen2.5-1.5b"), "{}", run.stderr);
    for layers in ["0", "31"] {
        let run = common::specbatch(&[
            "synth-model",
            "--shape",
            "smollm2-135m",
            "--layers",
            layers,
            "--out",
            file,
        ]);
        common::assert_exit_2(&run, &[&format!("--layers {layers}"), "1 to 30"]);
    }
    let run = common::specbatch(&[
        "synth-model",
        "--shape",
        "smollm2-135m",
        "--layers",
        "1",
        "--out",
        "/nonexistent-dir/m.gguf",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("/nonexistent-dir/m.gguf"),
        "{}",
        run.stderr
    );
}
