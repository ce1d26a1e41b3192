//! Shards on one machine: three shard processes run at once (the shard index
//! from `--shard`, `JOB_COMPLETION_INDEX` and `SLURM_ARRAY_TASK_ID`), one is
//! SIGKILLed mid-run and restarted; `_SUCCESS` appears only once every shard
//! is done, and the union of the shards' output equals a single-process run,
//! every row exactly once (checked with DuckDB). Bad shard requests stop
//! before any work with exit code 2.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn specbatch(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_specbatch"));
    c.args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID");
    c
}

fn run(args: &[&str]) -> Output {
    specbatch(args).output().unwrap()
}

fn results(out: &Path) -> Vec<Vec<serde_json::Value>> {
    common::duckdb_query(&format!(
        "select input_row, count(*), min(status), min(coalesce(output_text, error_kind)) \
         from read_parquet('{}/data/**/*.parquet') group by input_row order by input_row",
        out.display()
    ))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn concurrent_shards_with_a_crash_equal_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = common::write_quickstart_spec(tmp.path(), &tmp.path().join("unused"), 10);
    let spec = spec.to_str().unwrap();
    let single = tmp.path().join("single");
    let multi = tmp.path().join("multi");
    let multi_s = multi.to_str().unwrap();

    let o = run(&["run", spec, "--output", single.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let reference = results(&single);
    assert_eq!(reference.len(), 36);

    let o = run(&["plan", spec, "--output", multi_s, "--shards", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 shard(s)"), "{}", text(&o));
    let plan_bytes = std::fs::read(multi.join("_plan/plan.json")).unwrap();

    // Bad requests: nothing starts, nothing is touched.
    let o = run(&["run", spec, "--output", multi_s, "--shard", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("shard 3 is outside the plan's 3 shard(s)"),
        "{}",
        text(&o)
    );
    let o = run(&["run", spec, "--output", multi_s, "--shards", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("3 shard(s), not the 2 asked for"),
        "{}",
        text(&o)
    );
    let o = run(&["finalize", multi_s]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "nothing is done yet: {}",
        text(&o)
    );
    assert!(!multi.join("data/shard=00003").exists());

    let start = |shard: u32| -> Child {
        let mut c = specbatch(&["run", spec, "--output", multi_s]);
        match shard {
            0 => c.args(["--shard", "0"]),
            1 => c.env("JOB_COMPLETION_INDEX", "1"),
            _ => c.env("SLURM_ARRAY_TASK_ID", "2"),
        };
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut shards: Vec<Child> = (0..3).map(start).collect();
    // SIGKILL shard 1 once it has committed something.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut killed = false;
    loop {
        if shards[1].try_wait().unwrap().is_some() {
            break;
        }
        if common::commits(&multi, 1) >= 1 || Instant::now() > deadline {
            shards[1].kill().unwrap();
            shards[1].wait().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for s in [0, 2] {
        assert!(shards[s].wait().unwrap().success(), "shard {s}");
    }
    if killed {
        assert!(
            !multi.join("_SUCCESS").exists(),
            "_SUCCESS waits for the killed shard"
        );
        let o = run(&["finalize", multi_s]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("[1]"),
            "names the missing shard: {}",
            text(&o)
        );
    }
    let o = specbatch(&["run", spec, "--output", multi_s])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(multi.join("_SUCCESS").exists(), "the last shard finalizes");
    assert_eq!(
        std::fs::read(multi.join("_plan/plan.json")).unwrap(),
        plan_bytes,
        "the plan is immutable"
    );

    let got = results(&multi);
    assert_eq!(got.len(), reference.len(), "every row present");
    for (g, r) in got.iter().zip(&reference) {
        assert_eq!(g[1].as_i64(), Some(1), "row {} exactly once", g[0]);
        assert_eq!(g, r, "row {} as in the single-process run", g[0]);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(multi.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["total"].as_u64(), Some(36));
    assert_eq!(manifest["shards"].as_array().map(Vec::len), Some(3));
    for s in 0..3 {
        assert!(
            multi
                .join(format!("_commits/shard={s:05}/_DONE.json"))
                .is_file()
        );
    }
    // Finalizing again is harmless.
    let o = run(&["finalize", multi_s]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_plan_made_with_another_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.gguf");
    std::os::unix::fs::symlink(common::model_path(common::SMOLLM2), &model).unwrap();
    let spec = format!(
        "inputs:\n  paths: [{root}/datasets/quickstart.parquet]\n  prompt_column: prompt\n  messages_column: messages\n\
model: {model}\n\
generation:\n  max_new_tokens: 4\n\
output:\n  path: {out}\n",
        root = common::root().display(),
        model = model.display(),
        out = tmp.path().join("out").display()
    );
    let spec_path = tmp.path().join("job.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let spec_path = spec_path.to_str().unwrap();
    let o = run(&["plan", spec_path]);
    assert!(o.status.success(), "{}", text(&o));
    // Same spec (same path), other weights behind it.
    std::fs::remove_file(&model).unwrap();
    std::os::unix::fs::symlink(common::model_path(common::QWEN05), &model).unwrap();
    let o = run(&["run", spec_path]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("model hash"), "{}", text(&o));
    assert!(!tmp.path().join("out/data").exists(), "no work was started");
}
