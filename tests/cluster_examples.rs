//! The cluster examples in `jobs/` (Kubernetes Indexed Job, Slurm array) agree
//! with each other and with the shard contract of `specbatch run`:
//!
//! - one shard count everywhere: the Job's `completions`, the Slurm `--array`
//!   range and every `--shards N`;
//! - retries per shard, with exit code 2 never retried (`podFailurePolicy`
//!   `FailIndex`; the Slurm script exits 2 at once) and other failures retried;
//! - the spec in the ConfigMap is `jobs/sharded.yaml`, which is
//!   `jobs/quickstart.yaml` with another output path, and the finalize steps
//!   name that output path.
//!
//! The manifests are only parsed (no cluster here); the Slurm script's retry
//! loop runs for real against a stand-in `specbatch`. No network, no model.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use specbatch::job::JobSpec;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every non-empty document of a YAML file, as generic values.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read(rel)).unwrap_or_else(|e| panic!("parse {rel}: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The one document of `kind` in the file.
fn doc_of_kind(rel: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = yaml_docs(rel)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{rel}: expected one {kind}");
    found.pop().unwrap()
}

fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("missing {pointer} in {v}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

fn u64_at(v: &Value, pointer: &str) -> u64 {
    at(v, pointer)
        .as_u64()
        .unwrap_or_else(|| panic!("{pointer} is not a non-negative integer"))
}

/// The container's command and args, as one list of strings.
fn command_line(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .filter_map(|k| container.get(*k))
        .flat_map(|list| list.as_array().expect("command/args is a list").iter())
        .map(|s| s.as_str().expect("command items are strings").to_string())
        .collect()
}

/// The value after `flag` in `words`; panics unless it occurs exactly once.
fn flag_value<'a>(words: &[&'a str], flag: &str) -> &'a str {
    let hits: Vec<usize> = (0..words.len()).filter(|&i| words[i] == flag).collect();
    assert_eq!(hits.len(), 1, "expected one {flag} in {words:?}");
    words
        .get(hits[0] + 1)
        .unwrap_or_else(|| panic!("{flag} has no value"))
}

fn parse_count(s: &str, what: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| panic!("{what}: `{s}` is not a number"))
}

/// Every `--shards N` in a shell script (shell words of non-comment lines).
fn shards_in_script(text: &str) -> Vec<u64> {
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == "--shards" {
                let n = words.get(i + 1).expect("--shards has a value");
                found.push(parse_count(n, "--shards"));
            }
        }
    }
    found
}

/// The value of `#SBATCH --name=value` (or `--name value`), if present;
/// `Some("")` for a flag without a value. Like sbatch, reads directives only
/// up to the first line that is neither blank nor a comment.
fn sbatch_option(text: &str, name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut found = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            break;
        }
        let Some(rest) = line.strip_prefix("#SBATCH") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(first) = words.next() else { continue };
        let value = if first == flag {
            Some(words.next().unwrap_or("").to_string())
        } else {
            first
                .strip_prefix(&flag)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        };
        if let Some(v) = value {
            assert!(found.is_none(), "#SBATCH --{name} given twice");
            found = Some(v);
        }
    }
    found
}

/// Shard count of an array range `0-(N-1)[%K]`; panics on any other shape.
fn array_shards(range: &str) -> u64 {
    let (span, throttle) = match range.split_once('%') {
        Some((span, k)) => (span, Some(parse_count(k, "--array throttle"))),
        None => (range, None),
    };
    let (first, last) = span
        .split_once('-')
        .unwrap_or_else(|| panic!("--array={range} is not a range FIRST-LAST"));
    assert_eq!(first, "0", "--array={range} must start at shard 0");
    let n = parse_count(last, "--array last index") + 1;
    if let Some(k) = throttle {
        assert!(
            (1..=n).contains(&k),
            "--array={range}: throttle {k} out of 1..={n}"
        );
    }
    n
}

/// `jobs/sharded.yaml`'s output path.
fn sharded_output() -> String {
    let spec = JobSpec::from_yaml(&read("jobs/sharded.yaml"), "jobs/sharded.yaml")
        .unwrap_or_else(|e| panic!("jobs/sharded.yaml: {e}"));
    spec.output.path
}

/// The shard count of the Kubernetes Indexed Job.
fn k8s_shards() -> u64 {
    u64_at(
        &doc_of_kind("jobs/k8s/indexed-job.yaml", "Job"),
        "/spec/completions",
    )
}

#[test]
fn sharded_spec_is_the_quickstart_with_its_own_output() {
    let mut quick: Value = serde_saphyr::from_str(&read("jobs/quickstart.yaml")).unwrap();
    let sharded: Value = serde_saphyr::from_str(&read("jobs/sharded.yaml")).unwrap();
    assert_eq!(sharded_output(), "out/sharded");
    quick["output"]["path"] = Value::from("out/sharded");
    assert_eq!(
        sharded, quick,
        "sharded.yaml differs from quickstart.yaml in more than output.path"
    );
}

#[test]
fn indexed_job_runs_one_shard_per_index() {
    let job = doc_of_kind("jobs/k8s/indexed-job.yaml", "Job");
    assert_eq!(str_at(&job, "/apiVersion"), "batch/v1");
    assert_eq!(str_at(&job, "/spec/completionMode"), "Indexed");
    let completions = u64_at(&job, "/spec/completions");
    assert!(completions >= 1);
    let parallelism = u64_at(&job, "/spec/parallelism");
    assert!(
        (1..=completions).contains(&parallelism),
        "parallelism {parallelism}"
    );

    let pod = at(&job, "/spec/template/spec");
    assert_eq!(str_at(pod, "/restartPolicy"), "Never");
    let containers = at(pod, "/containers").as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container per pod");
    let container = &containers[0];
    let words = command_line(container);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(&words[..2], ["specbatch", "run"], "{words:?}");
    let shards = parse_count(flag_value(&words, "--shards"), "--shards");
    assert_eq!(shards, completions, "--shards must equal completions");
    // The index comes from JOB_COMPLETION_INDEX, never a fixed --shard.
    assert!(!words.contains(&"--shard"), "{words:?}");
    let env = container.get("env").and_then(Value::as_array);
    assert!(
        env.into_iter()
            .flatten()
            .all(|e| e["name"] != "JOB_COMPLETION_INDEX"),
        "JOB_COMPLETION_INDEX is Kubernetes' to set"
    );

    // The spec argument is the ConfigMap's job.yaml, mounted read-only.
    let spec_path = Path::new(words[2]);
    let mount = at(container, "/volumeMounts")
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(str_at(m, "/mountPath")) == spec_path.parent().unwrap())
        .expect("a volume mounted where the spec is");
    let volume = at(pod, "/volumes")
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the spec's volume");
    let config_map = doc_of_kind("jobs/k8s/indexed-job.yaml", "ConfigMap");
    assert_eq!(
        str_at(volume, "/configMap/name"),
        str_at(&config_map, "/metadata/name")
    );
    let key = spec_path.file_name().unwrap().to_str().unwrap();
    let embedded = at(&config_map, &format!("/data/{key}")).as_str().unwrap();
    let embedded_spec: Value = serde_saphyr::from_str(embedded).unwrap();
    let sharded: Value = serde_saphyr::from_str(&read("jobs/sharded.yaml")).unwrap();
    assert_eq!(
        embedded_spec, sharded,
        "ConfigMap job.yaml != jobs/sharded.yaml"
    );
    JobSpec::from_yaml(embedded, "ConfigMap job.yaml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn indexed_job_retries_per_index_but_never_exit_code_2() {
    let job = doc_of_kind("jobs/k8s/indexed-job.yaml", "Job");
    let completions = u64_at(&job, "/spec/completions");
    assert!(u64_at(&job, "/spec/backoffLimitPerIndex") >= 1);
    let max_failed = u64_at(&job, "/spec/maxFailedIndexes");
    assert!(max_failed <= completions, "maxFailedIndexes {max_failed}");
    // With backoffLimitPerIndex the Job-wide limit stays unset.
    assert!(job["spec"].get("backoffLimit").is_none());

    let container = str_at(&job, "/spec/template/spec/containers/0/name");
    let rules = at(&job, "/spec/podFailurePolicy/rules").as_array().unwrap();
    let fail_index: Vec<&Value> = rules
        .iter()
        .filter(|r| r["action"] == "FailIndex")
        .collect();
    assert_eq!(fail_index.len(), 1, "one FailIndex rule");
    let on_exit = at(fail_index[0], "/onExitCodes");
    assert_eq!(str_at(on_exit, "/containerName"), container);
    assert_eq!(str_at(on_exit, "/operator"), "In");
    assert_eq!(at(on_exit, "/values"), &serde_json::json!([2]));

    let ignores_disruption = rules.iter().any(|r| {
        r["action"] == "Ignore"
            && r["onPodConditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "DisruptionTarget"))
    });
    assert!(
        ignores_disruption,
        "pod disruptions must not use up retries"
    );
    // No rule may make other exit codes fatal.
    for rule in rules {
        if let Some(codes) = rule.get("onExitCodes") {
            assert_eq!(rule["action"], "FailIndex", "{rule}");
            assert_eq!(codes["values"], serde_json::json!([2]), "{rule}");
        }
    }
}

#[test]
fn finalize_job_names_the_sharded_output_on_the_same_volume() {
    let job = doc_of_kind("jobs/k8s/indexed-job.yaml", "Job");
    let fin = doc_of_kind("jobs/k8s/finalize-job.yaml", "Job");
    assert_eq!(str_at(&fin, "/apiVersion"), "batch/v1");
    assert!(fin["spec"].get("completionMode").is_none());
    let pod = at(&fin, "/spec/template/spec");
    assert_eq!(str_at(pod, "/restartPolicy"), "Never");
    let container = at(pod, "/containers/0");
    let words = command_line(container);
    assert_eq!(words, ["specbatch", "finalize", sharded_output().as_str()]);

    let run_pod = at(&job, "/spec/template/spec");
    for p in ["/containers/0/image", "/containers/0/workingDir"] {
        assert_eq!(str_at(pod, p), str_at(run_pod, p), "{p}");
    }
    let claim = |pod: &Value| -> Vec<String> {
        at(pod, "/volumes")
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(claim(pod), claim(run_pod));
    let pvc = doc_of_kind("jobs/k8s/storage.yaml", "PersistentVolumeClaim");
    assert_eq!(claim(pod), [str_at(&pvc, "/metadata/name")]);
    assert_eq!(
        at(&pvc, "/spec/accessModes"),
        &serde_json::json!(["ReadWriteMany"]),
        "pods on several nodes share the volume"
    );
}

#[test]
fn slurm_array_covers_the_same_shards() {
    let script = read("jobs/slurm/array.sbatch");
    let range = sbatch_option(&script, "array").expect("#SBATCH --array");
    let n = array_shards(&range);
    assert_eq!(
        n,
        k8s_shards(),
        "Slurm and Kubernetes examples use one shard count"
    );
    assert_eq!(sbatch_option(&script, "requeue").as_deref(), Some(""));
    assert!(sbatch_option(&script, "cpus-per-task").is_some());
    assert!(sbatch_option(&script, "time").is_some());
    let log = sbatch_option(&script, "output").expect("#SBATCH --output");
    assert!(
        log.contains("%A") && log.contains("%a"),
        "one log per task: {log}"
    );

    assert_eq!(shards_in_script(&script), [n]);
    let submit = read("jobs/slurm/submit.sh");
    assert!(shards_in_script(&submit).iter().all(|&s| s == n));
    assert!(submit.contains("--dependency=afterany:"));
    assert!(submit.contains("jobs/slurm/array.sbatch"));
    assert!(submit.contains("jobs/slurm/finalize.sbatch"));
    assert!(submit.contains(&format!("out=${{2:-{}}}", sharded_output())));

    let fin = read("jobs/slurm/finalize.sbatch");
    assert!(sbatch_option(&fin, "array").is_none());
    assert!(fin.contains(&format!("out=${{1:-{}}}", sharded_output())));
    assert!(fin.contains(" finalize \"$out\""));
}

#[test]
fn shell_scripts_parse() {
    for rel in [
        "jobs/slurm/array.sbatch",
        "jobs/slurm/finalize.sbatch",
        "jobs/slurm/submit.sh",
    ] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(repo().join(rel))
            .output()
            .expect("run bash -n");
        assert!(
            out.status.success(),
            "bash -n {rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `array.sbatch` as array task 1 against a stand-in `specbatch` that
/// exits with the given codes in turn; returns the script's exit code and the
/// argument lines the stand-in saw.
fn run_array_task(codes: &[i32]) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let codes_file = dir.path().join("codes");
    let calls = dir.path().join("calls");
    std::fs::write(
        &codes_file,
        codes.iter().map(|c| format!("{c}\n")).collect::<String>(),
    )
    .unwrap();
    let fake = dir.path().join("specbatch");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/bash\n\
             echo \"$* shard=$SLURM_ARRAY_TASK_ID\" >> '{calls}'\n\
             code=$(head -n1 '{codes}')\n\
             sed -i 1d '{codes}'\n\
             exit \"$code\"\n",
            calls = calls.display(),
            codes = codes_file.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = Command::new("bash")
        .arg(repo().join("jobs/slurm/array.sbatch"))
        .current_dir(dir.path())
        .env("SPECBATCH", &fake)
        .env("SPECBATCH_ATTEMPTS", "3")
        .env("SPECBATCH_RETRY_DELAY", "0")
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_JOB_ID", "77")
        .env("SLURM_JOB_ID", "78")
        .output()
        .expect("run array.sbatch");
    let seen = std::fs::read_to_string(&calls).unwrap_or_default();
    (
        status.status.code().expect("exited, not killed"),
        seen.lines().map(str::to_string).collect(),
    )
}

#[test]
fn slurm_task_exits_2_at_once_and_retries_other_failures() {
    let n = k8s_shards();
    let call = format!("run jobs/sharded.yaml --shards {n} shard=1");

    let (rc, seen) = run_array_task(&[0]);
    assert_eq!((rc, seen), (0, vec![call.clone()]));

    let (rc, seen) = run_array_task(&[2, 0]);
    assert_eq!((rc, seen.len()), (2, 1), "exit 2 is not retried");

    let (rc, seen) = run_array_task(&[1, 137, 0]);
    assert_eq!((rc, seen.len()), (0, 3), "retriable failures are retried");
    assert!(seen.iter().all(|s| *s == call));

    let (rc, seen) = run_array_task(&[1, 2, 0]);
    assert_eq!((rc, seen.len()), (2, 2), "exit 2 on a retry stops too");

    let (rc, seen) = run_array_task(&[1, 1, 143, 0]);
    assert_eq!(
        (rc, seen.len()),
        (143, 3),
        "gives up after SPECBATCH_ATTEMPTS"
    );
}
