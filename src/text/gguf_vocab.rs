//! Rebuilds a `tokenizers` BPE tokenizer from the vocabulary stored in GGUF
//! metadata (`tokenizer.ggml.*`).
//!
//! GGUF stores the byte-level BPE token strings, the merge list and a
//! pre-tokenizer *name* (`tokenizer.ggml.pre`); the regexes themselves live in
//! each engine. We map the names the supported models use to the equivalent
//! `tokenizers` pipeline; an unknown name is an error rather than a silent
//! fallback, since a wrong pre-tokenizer produces plausible but different ids.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::tokenizer::TokenizerError;

/// GGUF token type for control tokens (`<|im_start|>`, EOS, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type for user-defined tokens, matched whole like control tokens.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Qwen2's pre-tokenizer split pattern (as published in its tokenizer.json).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer fields of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`; only `gpt2` (byte-level BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (may be empty).
    pub token_types: Vec<i32>,
}

impl GgufVocab {
    /// Builds the `tokenizers` pipeline equivalent to this vocabulary.
    pub fn build(&self) -> Result<Tokenizer, TokenizerError> {
        if self.model != "gpt2" {
            return Err(TokenizerError::Unsupported(format!(
                "tokenizer.ggml.model `{}` (only `gpt2` byte-level BPE is supported)",
                self.model
            )));
        }
        let vocab: Vocab = self
            .tokens
            .iter()
            .enumerate()
            .map(|(id, tok)| (tok.clone(), id as u32))
            .collect();
        let mut merges = Vec::with_capacity(self.merges.len());
        for (i, m) in self.merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').ok_or_else(|| {
                TokenizerError::Invalid(format!("tokenizer.ggml.merges[{i}] `{m}` has no space"))
            })?;
            merges.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Invalid(format!("BPE: {e}")))?;
        let mut tok = Tokenizer::new(bpe);
        match self.pre.as_str() {
            "smollm" => {
                tok.with_pre_tokenizer(Some(Sequence::new(vec![
                    PreTokenizerWrapper::Digits(Digits::new(true)),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
                ])));
            }
            "qwen2" => {
                tok.with_normalizer(Some(NFC))
                    .map_err(|e| TokenizerError::Invalid(format!("normalizer: {e}")))?;
                let split = Split::new(
                    SplitPattern::Regex(QWEN2_SPLIT.to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| TokenizerError::Invalid(format!("split regex: {e}")))?;
                tok.with_pre_tokenizer(Some(Sequence::new(vec![
                    PreTokenizerWrapper::Split(split),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
                ])));
            }
            "default" | "gpt2" => {
                tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            }
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "tokenizer.ggml.pre `{other}` (supported: smollm, qwen2, gpt2, default)"
                )));
            }
        }
        tok.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens are matched whole and hidden when decoding output;
        // user-defined tokens are matched whole but kept in decoded text.
        let of_type = |wanted: i32, special: bool| -> Vec<AddedToken> {
            self.token_types
                .iter()
                .zip(&self.tokens)
                .filter(|(ty, _)| **ty == wanted)
                .map(|(_, t)| AddedToken::from(t.clone(), special))
                .collect()
        };
        let added = |e: tokenizers::Error| TokenizerError::Invalid(format!("added tokens: {e}"));
        tok.add_special_tokens(of_type(TOKEN_TYPE_CONTROL, true))
            .map_err(added)?;
        tok.add_tokens(of_type(TOKEN_TYPE_USER_DEFINED, false))
            .map_err(added)?;
        Ok(tok)
    }
}
