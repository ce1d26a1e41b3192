//! Loading, locating, validating and hashing job specs end to end, through
//! the public entry points.

use std::path::PathBuf;

use super::locate::SourceMap;
use super::spec::{Compression, DEFAULT_MODEL, JobSpec, PromptFormat, SpecMethod, SpeculationSpec};
use super::{Diagnostic, SpecError, expected::expected};
use crate::backend::device::{Device, DeviceSpec};

const MINIMAL: &str = "\
inputs:
  paths: [data.parquet]
  prompt_column: prompt
output:
  path: out/x
";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(yaml: &str) -> Result<JobSpec, SpecError> {
    JobSpec::from_yaml(yaml, "t.yaml")
}

fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    match parse(yaml) {
        Ok(spec) => panic!("expected an error for:\n{yaml}\ngot {spec:?}"),
        Err(e) => {
            let d = e.diagnostics().to_vec();
            assert!(!d.is_empty(), "an Invalid error carries diagnostics");
            d
        }
    }
}

/// The first (or only) error names `field` at `line`, and its rendered text
/// carries both, plus `needle`.
#[track_caller]
fn assert_error(yaml: &str, field: &str, line: usize, needle: &str) {
    let d = diagnostics(yaml);
    let text = SpecError::Invalid(d.clone()).to_string();
    let hit = d.iter().find(|d| d.field == field).unwrap_or_else(|| {
        panic!("no error for `{field}` in:\n{text}\nfor:\n{yaml}");
    });
    assert_eq!(hit.line, line, "{text}");
    assert!(hit.column >= 1, "{text}");
    let rendered = hit.to_string();
    assert!(
        rendered.starts_with(&format!("{field}: ")),
        "field first: {rendered}"
    );
    assert!(
        rendered.contains(&format!("(t.yaml line {line}, column {})", hit.column)),
        "{rendered}"
    );
    assert!(rendered.contains(needle), "`{needle}` in {rendered}");
}

/// MINIMAL plus extra top-level sections (they start at line 6).
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn the_quickstart_spec_loads() {
    let spec = JobSpec::load(root().join("jobs/quickstart.yaml")).unwrap();
    assert_eq!(spec.inputs.paths, ["datasets/quickstart.parquet"]);
    assert_eq!(spec.inputs.id_column, "id");
    assert_eq!(spec.inputs.prompt_column.as_deref(), Some("prompt"));
    assert_eq!(spec.inputs.messages_column.as_deref(), Some("messages"));
    assert_eq!(
        spec.inputs.overrides.max_new_tokens.as_deref(),
        Some("max_new_tokens")
    );
    assert_eq!(spec.inputs.pass_through, ["source", "topic"]);
    assert_eq!(spec.model, DEFAULT_MODEL);
    assert_eq!(spec.generation.max_new_tokens, 48);
    assert_eq!(spec.generation.temperature, 0.0);
    assert_eq!(spec.generation.seed, 7);
    assert!(spec.generation.stop.is_empty());
    assert_eq!(spec.engine.threads, 0);
    assert_eq!(spec.engine.max_concurrent_rows, 16);
    assert_eq!(spec.engine.max_batch_tokens, 512);
    assert_eq!(spec.engine.kv_cache_bytes, 512 << 20);
    assert_eq!(spec.output.path, "out/quickstart");
    assert_eq!(spec.output.rows_per_part, 16);
    assert_eq!(spec.output.compression, Compression::Zstd);
    assert!(!spec.output.overwrite);
}

#[test]
fn defaults_fill_omitted_keys() {
    let spec = parse(MINIMAL).unwrap();
    assert_eq!(spec.model, DEFAULT_MODEL);
    assert_eq!(spec.inputs.id_column, "id");
    assert_eq!(spec.inputs.prompt_format, PromptFormat::Chat);
    assert_eq!(spec.generation.max_new_tokens, 128);
    assert_eq!(spec.generation.top_p, 1.0);
    assert_eq!(spec.engine.kv_cache_bytes, 1 << 30);
    assert_eq!(spec.speculation, SpeculationSpec::default());
    assert_eq!(spec.speculation.method, SpecMethod::None);
    assert_eq!(spec.speculation.max_draft, 5);
    assert_eq!(spec.output.rows_per_part, 1000);
}

/// Extracts the first ```yaml block after `## Full example` in the docs.
fn docs_full_example() -> String {
    let doc = std::fs::read_to_string(root().join("docs/job-spec.md")).unwrap();
    let after = &doc[doc
        .find("## Full example")
        .expect("docs have a full example")..];
    let start = after.find("```yaml\n").unwrap() + "```yaml\n".len();
    let len = after[start..].find("```").unwrap();
    after[start..start + len].to_string()
}

#[test]
fn the_documented_full_example_loads_and_every_key_has_a_description() {
    let yaml = docs_full_example();
    let spec = JobSpec::from_yaml(&yaml, "docs").unwrap();
    assert_eq!(spec.engine.kv_cache_bytes, 4 << 30);
    assert_eq!(spec.output.compression, Compression::Snappy);
    assert_eq!(spec.speculation.method, SpecMethod::DraftModel);
    let map = SourceMap::build(&yaml);
    for key in [
        "inputs.paths[0]",
        "inputs.overrides.seed",
        "inputs.prompt_format",
        "model_sha256",
        "generation.system_prompt",
        "generation.stop[0]",
        "engine.kv_cache_bytes",
        "output.overwrite",
    ] {
        assert!(map.node(key).is_some(), "the full example sets `{key}`");
    }
    for key in [
        "inputs",
        "model",
        "model_sha256",
        "generation",
        "engine",
        "devices",
        "speculation",
        "output",
    ] {
        assert!(map.node(key).is_some(), "the full example sets `{key}`");
        assert!(expected(key).is_some(), "`{key}` has a description");
    }
    // Every key of every section appears in the example and is described.
    let spec_json = serde_json::to_value(&spec).unwrap();
    for (section, value) in spec_json.as_object().unwrap() {
        let Some(fields) = value.as_object() else {
            continue;
        };
        for (field, inner) in fields {
            let path = format!("{section}.{field}");
            assert!(map.node(&path).is_some(), "the full example sets `{path}`");
            assert!(expected(&path).is_some(), "`{path}` has a description");
            for sub in inner.as_object().into_iter().flat_map(|o| o.keys()) {
                let path = format!("{path}.{sub}");
                assert!(map.node(&path).is_some(), "the full example sets `{path}`");
                assert!(expected(&path).is_some(), "`{path}` has a description");
            }
        }
    }
}

#[test]
fn unknown_keys_are_located_at_every_depth() {
    assert_error(&with("bogus: 1\n"), "bogus", 6, "unknown key");
    assert_error(
        "inputs:\n  paths: [a]\n  prompt_column: p\n  colour: red\noutput:\n  path: o\n",
        "inputs.colour",
        4,
        "expected one of: paths, id_column",
    );
    assert_error(
        &with("generation:\n  seed: 1\n  temprature: 0.5\n"),
        "generation.temprature",
        8,
        "unknown key",
    );
    assert_error(
        "inputs:\n  paths: [a]\n  prompt_column: p\n  overrides:\n    top_k: k\n    typo: t\noutput:\n  path: o\n",
        "inputs.overrides.typo",
        6,
        "unknown key",
    );
    assert_error(
        &with("engine: {threads: 2, gpus: 1}\n"),
        "engine.gpus",
        6,
        "unknown key",
    );
    assert_error(
        "inputs:\n  paths: [a]\n  prompt_column: p\noutput:\n  path: o\n  extra: 1\n",
        "output.extra",
        6,
        "unknown key",
    );
    assert_error(
        &with("speculation:\n  method: ngram\n  gamma: 4\n"),
        "speculation.gamma",
        8,
        "expected one of: method, max_draft, draft_model, calibration",
    );
}

#[test]
fn missing_required_keys_are_named() {
    assert_error("output:\n  path: o\n", "inputs", 1, "missing required key");
    assert_error(
        "# a comment\ninputs:\n  paths: [a]\n  prompt_column: p\n",
        "output",
        2,
        "missing required key",
    );
    assert_error(
        "inputs:\n  prompt_column: p\noutput:\n  path: o\n",
        "inputs.paths",
        2,
        "missing required key",
    );
    assert_error(
        "inputs:\n  paths: [a]\n  prompt_column: p\noutput:\n  rows_per_part: 3\n",
        "output.path",
        5,
        "missing required key",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_error(
        &with("generation:\n  temperature: hot\n"),
        "generation.temperature",
        7,
        "expected a number, got `hot`",
    );
    assert_error(
        &with("engine:\n  threads: -1\n"),
        "engine.threads",
        7,
        "expected a whole number, got `-1`",
    );
    assert_error(
        "inputs:\n  paths: data.parquet\n  prompt_column: p\noutput:\n  path: o\n",
        "inputs.paths",
        2,
        "expected a list of file paths or glob patterns, got `data.parquet`",
    );
    assert_error(
        &with("generation: 5\n"),
        "generation",
        6,
        "expected a mapping, got `5`",
    );
    assert_error(
        &with("  overwrite: maybe\n"),
        "output.overwrite",
        6,
        "expected true or false",
    );
    assert_error(
        &with("  compression: lz4\n"),
        "output.compression",
        6,
        "expected one of zstd, snappy, none, got `lz4`",
    );
    assert_error(
        &with("generation:\n  reasoning: thinking\n"),
        "generation.reasoning",
        7,
        "expected one of non_think, think_high, think_max, got `thinking`",
    );
    assert_error(
        &with("speculation:\n  method: medusa\n"),
        "speculation.method",
        7,
        "expected one of none, ngram, draft_model, dspark, got `medusa`",
    );
    assert_error(
        &with("speculation:\n  max_draft: -1\n"),
        "speculation.max_draft",
        7,
        "expected a whole number, got `-1`",
    );
    assert_error(
        &with("generation:\n  stop: [a, [b]]\n"),
        "generation.stop[1]",
        7,
        "expected a string",
    );
    assert_error(
        "- 1\n- 2\n",
        "(top level)",
        1,
        "expected a mapping with at least",
    );
}

#[test]
fn bad_byte_sizes_are_located() {
    assert_error(
        &with("engine:\n  kv_cache_bytes: 4XB\n"),
        "engine.kv_cache_bytes",
        7,
        "unknown byte-size unit `XB`",
    );
    assert_error(
        &with("engine:\n  kv_cache_bytes: -5\n"),
        "engine.kv_cache_bytes",
        7,
        "expected a byte size like `4GiB` or `1000000`, got `-5`",
    );
    assert_error(
        &with("engine:\n  kv_cache_bytes: [1]\n"),
        "engine.kv_cache_bytes",
        7,
        "expected a byte size",
    );
    let spec = parse(&with("engine:\n  kv_cache_bytes: 1000000\n")).unwrap();
    assert_eq!(spec.engine.kv_cache_bytes, 1_000_000);
}

#[test]
fn each_value_rule_is_enforced_and_located() {
    let gen_rule = |body: &str, field: &str, needle: &str| {
        assert_error(&with(&format!("generation:\n  {body}\n")), field, 7, needle);
    };
    gen_rule(
        "max_new_tokens: 0",
        "generation.max_new_tokens",
        "at least 1, got 0",
    );
    gen_rule(
        "temperature: -0.5",
        "generation.temperature",
        "must be a number >= 0",
    );
    gen_rule("temperature: .nan", "generation.temperature", "got NaN");
    gen_rule(
        "top_p: 1.5",
        "generation.top_p",
        "must be in (0, 1], got 1.5",
    );
    gen_rule("top_p: 0", "generation.top_p", "must be in (0, 1], got 0");
    gen_rule("stop: [\"\"]", "generation.stop[0]", "must not be empty");

    let engine_rule = |body: &str, field: &str, needle: &str| {
        assert_error(&with(&format!("engine:\n  {body}\n")), field, 7, needle);
    };
    engine_rule(
        "max_concurrent_rows: 0",
        "engine.max_concurrent_rows",
        "at least 1",
    );
    engine_rule(
        "max_batch_tokens: 0",
        "engine.max_batch_tokens",
        "at least 1",
    );
    engine_rule(
        "kv_cache_bytes: 0GiB",
        "engine.kv_cache_bytes",
        "greater than 0",
    );

    assert_error(
        &with("  rows_per_part: 0\n"),
        "output.rows_per_part",
        6,
        "at least 1",
    );
    assert_error(
        "inputs:\n  paths: [a]\n  prompt_column: p\noutput:\n  path: \"  \"\n",
        "output.path",
        5,
        "must not be empty",
    );
    assert_error(&with("model: ''\n"), "model", 6, "must not be empty");
    assert_error(
        &with("model_sha256: abc\n"),
        "model_sha256",
        6,
        "64 hexadecimal digits",
    );

    let inputs = |body: &str, field: &str, line: usize, needle: &str| {
        let yaml = format!("inputs:\n{body}output:\n  path: o\n");
        assert_error(&yaml, field, line, needle);
    };
    inputs(
        "  paths: []\n  prompt_column: p\n",
        "inputs.paths",
        2,
        "at least one",
    );
    inputs(
        "  paths:\n    - a\n    - ''\n  prompt_column: p\n",
        "inputs.paths[1]",
        4,
        "must not be empty",
    );
    inputs(
        "  paths: ['data/[a.parquet']\n  prompt_column: p\n",
        "inputs.paths[0]",
        2,
        "invalid glob pattern",
    );
    inputs(
        "  paths: [a]\n  id_column: ''\n  prompt_column: p\n",
        "inputs.id_column",
        3,
        "must not be empty",
    );
    // Neither prompt nor messages: pointed at the `inputs` key.
    inputs(
        "  paths: [a]\n  id_column: id\n",
        "inputs.prompt_column",
        1,
        "set `prompt_column`, `messages_column` or both",
    );
    inputs(
        "  paths: [a]\n  prompt_column: text\n  messages_column: text\n",
        "inputs.messages_column",
        4,
        "must differ",
    );
    inputs(
        "  paths: [a]\n  messages_column: m\n  prompt_format: raw\n",
        "inputs.prompt_format",
        4,
        "needs a `prompt_column`",
    );
    inputs(
        "  paths: [a]\n  messages_column: ' '\n",
        "inputs.messages_column",
        3,
        "must not be empty",
    );
    inputs(
        "  paths: [a]\n  prompt_column: p\n  overrides:\n    seed: ''\n",
        "inputs.overrides.seed",
        5,
        "must not be empty",
    );
    inputs(
        "  paths: [a]\n  prompt_column: p\n  pass_through:\n    - source\n    - topic\n    - source\n",
        "inputs.pass_through[2]",
        7,
        "listed twice",
    );
    inputs(
        "  paths: [a]\n  prompt_column: p\n  pass_through: [topic, status]\n",
        "inputs.pass_through[1]",
        4,
        "collides with an output column",
    );
}

#[test]
fn speculation_rules_are_enforced_and_located() {
    let spec_rule = |body: &str, field: &str, line: usize, needle: &str| {
        assert_error(&with(&format!("speculation:\n{body}")), field, line, needle);
    };
    spec_rule(
        "  method: ngram\n  max_draft: 17\n",
        "speculation.max_draft",
        8,
        "must be in 1..=16 for `ngram` (the n-gram drafter's limit), got 17",
    );
    spec_rule(
        "  method: ngram\n  max_draft: 0\n",
        "speculation.max_draft",
        8,
        "got 0",
    );
    spec_rule(
        "  method: dspark\n  max_draft: 0\n",
        "speculation.max_draft",
        8,
        "must be at least 1, got 0",
    );
    // A missing key points at the nearest present ancestor.
    spec_rule(
        "  method: draft_model\n",
        "speculation.draft_model",
        6,
        "required when speculation.method is `draft_model`",
    );
    spec_rule(
        "  method: draft_model\n  draft_model: ''\n",
        "speculation.draft_model",
        8,
        "must not be empty",
    );
    spec_rule(
        "  method: ngram\n  draft_model: models/small.gguf\n",
        "speculation.draft_model",
        8,
        "set but speculation.method is `ngram`",
    );
    spec_rule(
        "  draft_model: models/small.gguf\n",
        "speculation.draft_model",
        7,
        "set but speculation.method is `none`",
    );
    spec_rule(
        "  calibration: sts.json\n",
        "speculation.calibration",
        7,
        "set but speculation.method is `none`",
    );
    spec_rule(
        "  method: ngram\n  calibration: ''\n",
        "speculation.calibration",
        8,
        "must not be empty",
    );
    // Within the limits, every method parses; whether the build and the
    // model can run it is decided once the model is loaded.
    for (body, method) in [
        ("method: ngram\n  max_draft: 16", SpecMethod::Ngram),
        ("method: ngram\n  calibration: sts.json", SpecMethod::Ngram),
        ("method: dspark\n  max_draft: 3", SpecMethod::Dspark),
        (
            "method: draft_model\n  draft_model: models/small.gguf",
            SpecMethod::DraftModel,
        ),
        ("method: none\n  max_draft: 40", SpecMethod::None),
    ] {
        let spec = parse(&with(&format!("speculation:\n  {body}\n"))).unwrap();
        assert_eq!(spec.speculation.method, method, "{body}");
    }
}

#[test]
fn devices_parse_as_a_list_or_cuda_all() {
    assert_eq!(
        parse(MINIMAL).unwrap().devices,
        DeviceSpec::List(vec![Device::Cpu])
    );
    let cases = [
        ("devices: [cpu]\n", DeviceSpec::List(vec![Device::Cpu])),
        (
            "devices: [cuda:1, cuda:0]\n",
            DeviceSpec::List(vec![Device::Cuda(1), Device::Cuda(0)]),
        ),
        (
            "devices:\n  - cuda:3\n",
            DeviceSpec::List(vec![Device::Cuda(3)]),
        ),
        ("devices: cuda:all\n", DeviceSpec::AllCuda),
        ("devices: \"cuda:all\"\n", DeviceSpec::AllCuda),
        // The drafter is per engine, so n-gram speculation runs on GPUs.
        (
            "devices: cuda:all\nspeculation:\n  method: ngram\n",
            DeviceSpec::AllCuda,
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(parse(&with(extra)).unwrap().devices, want, "{extra}");
    }
}

#[test]
fn device_rules_are_enforced_and_located() {
    assert_error(&with("devices: []\n"), "devices", 6, "at least one device");
    assert_error(
        &with("devices: [cuda:0, gpu0]\n"),
        "devices[1]",
        6,
        "unknown device `gpu0`; expected `cpu` or `cuda:N`",
    );
    assert_error(
        &with("devices:\n  - cuda:0\n  - CUDA:1\n"),
        "devices[1]",
        8,
        "unknown device `CUDA:1`",
    );
    assert_error(
        &with("devices: [cuda:0, cuda:1, cuda:0]\n"),
        "devices[2]",
        6,
        "`cuda:0` is listed twice (also at devices[0])",
    );
    assert_error(
        &with("devices:\n  - cpu\n  - cpu\n"),
        "devices[1]",
        8,
        "one CPU engine already uses every core",
    );
    assert_error(
        &with("devices: [cpu, cuda:0]\n"),
        "devices",
        6,
        "must not mix `cpu` with `cuda:N`",
    );
    assert_error(
        &with("devices: cuda:0\n"),
        "devices",
        6,
        "expected a list: write `devices: [cuda:0]`",
    );
    assert_error(&with("devices: gpu\n"), "devices", 6, "got `gpu`");
    assert_error(
        &with("devices: [cuda:all]\n"),
        "devices[0]",
        6,
        "devices: cuda:all",
    );
    assert_error(&with("devices: {cuda: 0}\n"), "devices", 6, "devices");
    for method in ["draft_model\n  draft_model: d.gguf", "dspark"] {
        assert_error(
            &with(&format!(
                "devices: [cuda:0]\nspeculation:\n  method: {method}\n"
            )),
            "speculation.method",
            8,
            "runs only with `devices: [cpu]`",
        );
    }
}

#[test]
fn every_violation_is_reported_in_document_order() {
    let yaml = "\
inputs:
  paths: [a]
  prompt_column: p
generation:
  top_p: 2
  max_new_tokens: 0
output:
  path: o
  rows_per_part: 0
";
    let d = diagnostics(yaml);
    let got: Vec<(&str, usize)> = d.iter().map(|d| (d.field.as_str(), d.line)).collect();
    assert_eq!(
        got,
        [
            ("generation.top_p", 5),
            ("generation.max_new_tokens", 6),
            ("output.rows_per_part", 9)
        ]
    );
    let text = SpecError::Invalid(d).to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn a_missing_file_is_a_read_error() {
    let err = JobSpec::load(root().join("jobs/no-such-spec.yaml")).unwrap_err();
    assert!(matches!(err, SpecError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-spec.yaml"), "{err}");
    assert!(err.diagnostics().is_empty());
}

#[test]
fn load_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, with("generation:\n  top_p: 7\n")).unwrap();
    let err = JobSpec::load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "generation.top_p: must be in (0, 1], got 7 ({} line 7, column 3)",
            path.display()
        )
    );
}

#[test]
fn invalid_yaml_is_located() {
    assert_error(
        "inputs:\n  paths: [a\noutput:\n  path: o\n",
        "inputs.paths",
        3,
        "':'",
    );
    let d = diagnostics("inputs:\n\tpaths: [a]\n");
    assert_eq!(d[0].line, 2, "{:?}", d[0]);
    assert_eq!(d[0].field, "inputs");
    assert_error(
        "inputs: {paths: [a], prompt_column: p}\noutput: {path: o}\n---\nx: 1\n",
        "(top level)",
        4,
        "multiple",
    );
    assert_error("\"in\\nputs\": 1\n", "in\\nputs", 1, "unknown key");
    assert_error(
        "inputs:\n  paths: [a]\n  paths: [b]\noutput:\n  path: o\n",
        "inputs.paths",
        3,
        "duplicate",
    );
}

#[test]
fn an_empty_spec_says_what_is_missing() {
    for yaml in ["", "\n\n", "# nothing here\n"] {
        let d = diagnostics(yaml);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "inputs");
        assert_eq!((d[0].line, d[0].column), (1, 1));
        assert!(d[0].message.contains("missing required key"));
    }
}

#[test]
fn the_hash_ignores_layout_comments_key_order_and_explicit_defaults() {
    let base = parse(MINIMAL).unwrap().spec_hash();
    assert_eq!(base.len(), 64);
    assert!(
        base.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let same = [
        // Reordered keys, flow style, comments.
        "output: {path: out/x}   # where\ninputs:\n  prompt_column: prompt\n  paths:\n    - data.parquet\n",
        // Explicit defaults.
        "inputs:\n  paths: [data.parquet]\n  id_column: id\n  prompt_column: prompt\n  prompt_format: chat\n  pass_through: []\nmodel: models/smollm2-135m-instruct-q4_1.gguf\ngeneration:\n  reasoning: non_think\n  max_new_tokens: 128\n  temperature: 0.0\n  top_p: 1\n  top_k: 0\n  seed: 0\n  stop: []\noutput:\n  path: out/x\n",
        // Engine and output settings are not part of the identity.
        "inputs:\n  paths: [data.parquet]\n  prompt_column: prompt\nengine:\n  threads: 3\n  max_concurrent_rows: 2\n  kv_cache_bytes: 64MiB\noutput:\n  path: elsewhere\n  rows_per_part: 5\n  compression: none\n  overwrite: true\n",
        // A model pin guards, it does not change results.
        &with(&format!("model_sha256: {}\n", "ab".repeat(32))),
        // Speculation is lossless: it changes speed, not what rows are drawn from.
        &with("speculation:\n  method: ngram\n  max_draft: 8\n  calibration: sts.json\n"),
        // Devices decide where the engines run: a job resumes on other ones.
        &with("devices: [cuda:0, cuda:1]\n"),
        &with("devices: cuda:all\n"),
        &with("devices: [cpu]\n"),
    ];
    for yaml in same {
        assert_eq!(parse(yaml).unwrap().spec_hash(), base, "{yaml}");
    }
    let different = [
        with("generation:\n  temperature: 0.7\n"),
        with("generation:\n  seed: 8\n"),
        with("generation:\n  stop: [\"\\n\"]\n"),
        with("generation:\n  system_prompt: Be brief.\n"),
        with("generation:\n  reasoning: think_high\n"),
        with("generation:\n  reasoning: think_max\n"),
        with("model: models/other.gguf\n"),
        MINIMAL.replace("data.parquet", "other.parquet"),
        MINIMAL.replace("prompt_column: prompt", "prompt_column: text"),
    ];
    let mut seen = std::collections::HashSet::from([base.clone()]);
    for yaml in &different {
        let h = parse(yaml).unwrap().spec_hash();
        assert!(
            seen.insert(h),
            "a result-changing edit changes the hash: {yaml}"
        );
    }
}

#[test]
fn the_canonical_json_has_sorted_keys() {
    let json = parse(MINIMAL).unwrap().canonical_json();
    assert_eq!(
        json,
        "{\"generation\":{\"max_new_tokens\":128,\"reasoning\":\"non_think\",\"seed\":0,\
         \"stop\":[],\"system_prompt\":null,\"temperature\":0.0,\"top_k\":0,\"top_p\":1.0},\
         \"inputs\":{\"id_column\":\"id\",\"messages_column\":null,\"overrides\":{\
         \"max_new_tokens\":null,\"reasoning\":null,\"seed\":null,\"temperature\":null,\
         \"top_k\":null,\"top_p\":null},\"pass_through\":[],\
         \"paths\":[\"data.parquet\"],\"prompt_column\":\"prompt\",\"prompt_format\":\"chat\"},\
         \"model\":\"models/smollm2-135m-instruct-q4_1.gguf\"}"
    );
}

/// A small deterministic generator, so the mangling below is reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

fn check_no_panic(yaml: &str) {
    if let Err(e) = parse(yaml) {
        for d in e.diagnostics() {
            assert!(d.line >= 1 && d.column >= 1, "{d:?} for {yaml:?}");
            assert!(!d.field.is_empty(), "{d:?} for {yaml:?}");
        }
    }
}

#[test]
fn mangled_yaml_never_panics() {
    let text = std::fs::read_to_string(root().join("jobs/quickstart.yaml")).unwrap();
    let chars: Vec<char> = text.chars().collect();
    // Every prefix.
    for end in 0..=chars.len() {
        check_no_panic(&chars[..end].iter().collect::<String>());
    }
    // Random insertions, deletions and line swaps.
    let noise: Vec<char> = ":-[]{}#&*!|>'\"\t\n ,?%@`<=~0é\u{0}".chars().collect();
    let mut rng = Lcg(7);
    for _ in 0..3000 {
        let mut c = chars.clone();
        for _ in 0..1 + rng.next(4) {
            let at = rng.next(c.len());
            match rng.next(3) {
                0 => c.insert(at, noise[rng.next(noise.len())]),
                1 if !c.is_empty() => {
                    c.remove(at.min(c.len() - 1));
                }
                _ => {
                    let n = rng.next(noise.len());
                    if at < c.len() {
                        c[at] = noise[n];
                    }
                }
            }
        }
        check_no_panic(&c.iter().collect::<String>());
    }
    let mut lines: Vec<&str> = text.lines().collect();
    for _ in 0..300 {
        let a = rng.next(lines.len());
        let b = rng.next(lines.len());
        lines.swap(a, b);
        check_no_panic(&lines.join("\n"));
    }
    // Deep nesting and aliases.
    check_no_panic(&"[".repeat(10_000));
    check_no_panic(&format!("inputs: {}", "- ".repeat(5_000)));
    check_no_panic("a: &a [*a, *a]\ninputs: *a\n");
    check_no_panic("? [complex, key]\n: value\ninputs: {}\n");
}
