use super::SpecError;
use super::spec::{Compression, JobSpec, PromptFormat};

const BASE: &str = "inputs:
  paths: [data/a.parquet]
  prompt_column: prompt
output:
  path: out/x
";

fn err(text: &str) -> (String, String, Option<u64>) {
    match JobSpec::from_yaml(text, "job.yaml").unwrap_err() {
        SpecError::Invalid {
            field,
            message,
            line,
            ..
        } => (field, message, line),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn the_quickstart_spec_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/quickstart.yaml");
    let s = JobSpec::load(&path).unwrap();
    assert_eq!(s.inputs.pass_through, ["source", "topic"]);
    assert_eq!(s.engine.kv_cache_bytes, 512 << 20);
    assert_eq!(s.output.compression, Compression::Zstd);
    assert_eq!(s.inputs.prompt_format, PromptFormat::Chat);
}

#[test]
fn defaults_fill_in() {
    let s = JobSpec::from_yaml(BASE, "job.yaml").unwrap();
    assert_eq!(s.model, super::spec::DEFAULT_MODEL);
    assert_eq!(s.generation.max_new_tokens, 128);
    assert_eq!(s.generation.top_p, 1.0);
    assert_eq!(s.inputs.id_column, "id");
    assert_eq!(s.engine.kv_cache_bytes, 1 << 30);
}

#[test]
fn unknown_keys_are_named_with_their_line_at_any_depth() {
    let (field, msg, line) = err(&format!("{BASE}colour: blue\n"));
    assert!(msg.contains("colour"), "{msg}");
    assert_eq!((field.as_str(), line), ("colour", Some(6)));
    let (field, msg, line) = err(&format!("{BASE}generation:\n  temprature: 0.5\n"));
    assert!(msg.contains("temprature"), "{msg}");
    assert_eq!((field.as_str(), line), ("generation.temprature", Some(7)));
    let (field, msg, line) = err(
        "inputs:\n  paths: [a]\n  prompt_column: p\n  overrides:\n    sed: s\noutput:\n  path: o\n",
    );
    assert!(msg.contains("sed"), "{msg}");
    assert_eq!((field.as_str(), line), ("inputs.overrides.sed", Some(5)));
}

#[test]
fn missing_sections_and_wrong_types_are_named() {
    let (_, msg, _) = err("output:\n  path: o\n");
    assert!(msg.contains("inputs"), "{msg}");
    let (field, msg, line) = err(&format!("{BASE}generation:\n  max_new_tokens: lots\n"));
    assert_eq!(field, "generation.max_new_tokens", "{msg}");
    assert_eq!(line, Some(7));
    let (field, msg, line) = err(&format!("{BASE}engine:\n  kv_cache_bytes: 4 parsecs\n"));
    assert_eq!(field, "engine.kv_cache_bytes");
    assert!(msg.contains("parsecs"), "{msg}");
    assert_eq!(line, Some(7));
}

#[test]
fn semantic_errors_point_at_the_offending_value() {
    let (field, msg, line) = err(&format!("{BASE}generation:\n  seed: 3\n  top_p: 1.5\n"));
    assert_eq!(field, "generation.top_p");
    assert!(msg.contains("(0, 1]"), "{msg}");
    assert_eq!(line, Some(8));
    let (field, _, line) = err(&format!("{BASE}generation:\n  stop: [\"x\", \"\"]\n"));
    assert_eq!((field.as_str(), line), ("generation.stop[1]", Some(7)));
    let (field, _, line) = err("inputs:\n  paths: [a]\noutput:\n  path: o\n");
    assert_eq!((field.as_str(), line), ("inputs", Some(2)));
    let (field, _, _) = err(&BASE.replace(
        "prompt_column: prompt",
        "prompt_column: p\n  pass_through: [status]",
    ));
    assert_eq!(field, "inputs.pass_through[0]");
    let (field, _, _) = err(&format!("{BASE}model_sha256: abc\n"));
    assert_eq!(field, "model_sha256");
    let e = JobSpec::from_yaml(&format!("{BASE}engine:\n  max_batch_tokens: 0\n"), "j.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("j.yaml: `engine.max_batch_tokens`: must be at least 1 (line 7"),
        "{e}"
    );
}

#[test]
fn byte_sizes_accept_units() {
    for (text, want) in [
        ("4GiB", 4u64 << 30),
        ("512MiB", 512 << 20),
        ("1000", 1000),
        ("2GB", 2_000_000_000),
    ] {
        let s =
            JobSpec::from_yaml(&format!("{BASE}engine:\n  kv_cache_bytes: {text}\n"), "j").unwrap();
        assert_eq!(s.engine.kv_cache_bytes, want, "{text}");
    }
}

#[test]
fn spec_hash_ignores_layout_and_engine_but_not_generation() {
    let a = JobSpec::from_yaml(BASE, "a").unwrap();
    let reordered = "# a comment\noutput: {path: elsewhere}\ninputs:\n  prompt_column: prompt\n  paths:\n    - data/a.parquet\n";
    let b = JobSpec::from_yaml(reordered, "b").unwrap();
    let explicit = JobSpec::from_yaml(
        &format!("{BASE}generation:\n  max_new_tokens: 128\nengine:\n  threads: 1\n"),
        "c",
    )
    .unwrap();
    assert_eq!(a.spec_hash(), b.spec_hash());
    assert_eq!(a.spec_hash(), explicit.spec_hash());
    let hotter =
        JobSpec::from_yaml(&format!("{BASE}generation:\n  temperature: 0.7\n"), "d").unwrap();
    assert_ne!(a.spec_hash(), hotter.spec_hash());
    assert_eq!(a.spec_hash().len(), 64);
}

#[test]
fn mangled_yaml_never_panics() {
    let full = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/quickstart.yaml"),
    )
    .unwrap();
    for cut in (0..full.len()).step_by(7) {
        let _ = JobSpec::from_yaml(&full[..cut], "cut");
        let mut bytes = full.clone().into_bytes();
        bytes[cut] = b"{[:-\"'&*!|>%@`"[cut % 14];
        let _ = JobSpec::from_yaml(&String::from_utf8_lossy(&bytes), "mangled");
    }
    assert!(matches!(
        JobSpec::load(std::path::Path::new("/no/such/job.yaml")),
        Err(SpecError::Read { .. })
    ));
}
