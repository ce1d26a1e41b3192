//! A synthetic byte-level BPE vocabulary of a real model's size, with the
//! real model's special tokens at their real ids, and a minimal ChatML
//! template: enough for `load_gguf` to build the tokenizer and recognise the
//! chat format, so a synthetic model runs real jobs (its text is gibberish).
//!
//! Layout of the ids that are not special: the 256 GPT-2 byte-level
//! characters (so any text encodes), then every pair of two characters from
//! `a`–`z` and `Ġ` (space) with its merge (so English costs about one token
//! per two bytes, as with a real vocabulary), then filler tokens that only
//! the model can produce. Unused ids after the specials are `[PAD<id>]`, as
//! in the real Qwen files.

use super::shapes::{ShapeSpec, TOKEN_UNUSED};

/// GGUF token type of an ordinary token.
const TOKEN_NORMAL: i32 = 1;

/// The tokenizer fields of a synthetic GGUF file.
pub(super) struct SynthVocab {
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
}

/// The 256 characters GPT-2's byte-level BPE writes for bytes 0..=255:
/// printable Latin-1 bytes stand for themselves, the others are shifted
/// past U+00FF in byte order.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut shifted = 0;
    (0..256u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                shifted += 1;
                255 + shifted
            };
            char::from_u32(code).expect("codes below U+0200 are chars")
        })
        .collect()
}

/// Ordinary tokens and their merges, in id order.
fn ordinary_tokens() -> (Vec<String>, Vec<String>) {
    let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
    let letters: Vec<char> = ('a'..='z').chain(['Ġ']).collect();
    let mut merges = Vec::new();
    for &a in &letters {
        for &b in &letters {
            tokens.push(format!("{a}{b}"));
            merges.push(format!("{a} {b}"));
        }
    }
    (tokens, merges)
}

pub(super) fn vocab(shape: &ShapeSpec) -> SynthVocab {
    let n = shape.vocab_size;
    let (ordinary, merges) = ordinary_tokens();
    let mut ordinary = ordinary.into_iter();
    let mut tokens = Vec::with_capacity(n);
    let mut token_types = Vec::with_capacity(n);
    for id in 0..n as u32 {
        if let Some(&(_, text, ty)) = shape.specials.iter().find(|s| s.0 == id) {
            tokens.push(text.to_string());
            token_types.push(ty);
        } else if shape.unused_from.is_some_and(|from| id >= from) {
            tokens.push(format!("[PAD{id}]"));
            token_types.push(TOKEN_UNUSED);
        } else {
            tokens.push(ordinary.next().unwrap_or_else(|| format!("synth{id}")));
            token_types.push(TOKEN_NORMAL);
        }
    }
    SynthVocab {
        tokens,
        token_types,
        merges,
    }
}

/// A minimal ChatML Jinja template with the real model's default system
/// prompt, written the way GGUF files store it (`\n` escapes inside Jinja
/// string literals), so the loader detects the same template family and
/// system prompt as in the real file.
pub(super) fn chat_template(shape: &ShapeSpec) -> String {
    format!(
        "{{%- if messages[0]['role'] != 'system' %}}{{{{- '<|im_start|>system\\n{}<|im_end|>\\n' }}}}{{%- endif %}}\
{{%- for message in messages %}}{{{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}}}{{%- endfor %}}\
{{%- if add_generation_prompt %}}{{{{- '<|im_start|>assistant\\n' }}}}{{%- endif %}}",
        shape.default_system
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_chars_are_256_distinct_with_space_as_g_dot() {
        let c = byte_chars();
        let set: std::collections::HashSet<_> = c.iter().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(c[b' ' as usize], 'Ġ');
        assert_eq!(c[b'A' as usize], 'A');
        assert_eq!(c[b'\n' as usize], 'Ċ');
    }
}
