//! Sampled output depends on a row's own seed, never on what shares its
//! steps: the same job with temperature sampling, top-k/top-p and a stop
//! string gives identical rows whether rows run one at a time or 16 at once.
//! Stop strings end rows with `finish_reason = stop` and never appear in the
//! output text.

mod common;

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, name: &str, concurrency: usize) -> std::path::PathBuf {
    let out = dir.join(name);
    let spec = format!(
        "inputs:\n  paths: [{root}/datasets/quickstart.parquet]\n  prompt_column: prompt\n  messages_column: messages\n\
model: {model}\n\
generation:\n  max_new_tokens: 24\n  temperature: 0.9\n  top_p: 0.95\n  top_k: 40\n  seed: 1234\n  stop: [\".\"]\n\
engine:\n  max_concurrent_rows: {concurrency}\n  max_batch_tokens: 128\n\
output:\n  path: {out}\n",
        root = common::root().display(),
        model = common::model_path(common::SMOLLM2),
        out = out.display()
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, spec).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_specbatch"))
        .arg("run")
        .arg(&p)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn sampled_rows_do_not_depend_on_batch_composition() {
    let tmp = tempfile::tempdir().unwrap();
    let serial = run(tmp.path(), "serial", 1);
    let batched = run(tmp.path(), "batched", 16);
    let q = |out: &Path| {
        common::duckdb_query(&format!(
            "select input_row, status, output_text, finish_reason, completion_tokens \
             from '{}/data/**/*.parquet' order by input_row",
            out.display()
        ))
    };
    let (a, b) = (q(&serial), q(&batched));
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b, "rows are identical whatever the concurrency");
    let stopped: Vec<_> = a.iter().filter(|r| r[3].as_str() == Some("stop")).collect();
    assert!(
        stopped.len() >= 5,
        "several rows end at the stop string: {}",
        stopped.len()
    );
    for r in &stopped {
        assert!(
            !r[2].as_str().unwrap().contains('.'),
            "stop string cut from the text: {r:?}"
        );
    }
    // Sampling really samples: the greedy run of the same job differs somewhere.
    let greedy = {
        let dir = tmp.path().join("g");
        std::fs::create_dir_all(&dir).unwrap();
        let spec = std::fs::read_to_string(tmp.path().join("serial.yaml"))
            .unwrap()
            .replace("temperature: 0.9", "temperature: 0")
            .replace(
                &tmp.path().join("serial").display().to_string(),
                &dir.join("out").display().to_string(),
            );
        std::fs::write(dir.join("g.yaml"), spec).unwrap();
        let ok = Command::new(env!("CARGO_BIN_EXE_specbatch"))
            .arg("run")
            .arg(dir.join("g.yaml"))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        q(&dir.join("out"))
    };
    assert_ne!(greedy, a, "temperature 0.9 changes some answers");
}
