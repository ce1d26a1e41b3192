//! The engine's tokenizer: a `tokenizers` pipeline plus the special ids the
//! step loop needs (end-of-sequence set, optional BOS).
//!
//! Encoding parses special-token text (`<|im_start|>`) into single ids, which
//! chat templates rely on.

use std::path::Path;

use tokenizers::Tokenizer;

/// Why a tokenizer could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    #[error("invalid tokenizer: {0}")]
    Invalid(String),
    #[error("cannot load tokenizer {path}: {message}")]
    Load { path: String, message: String },
    #[error("tokenization failed: {0}")]
    Encode(String),
}

/// A tokenizer with the model's special ids.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Highest id the tokenizer knows (model vocabulary or added token) + 1.
    vocab_size: usize,
    /// Ids that end generation (EOS and, for chat models, end-of-turn).
    pub eos_ids: Vec<u32>,
    /// BOS id prepended to every prompt when `add_bos` is set.
    pub bos_id: Option<u32>,
    pub add_bos: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("eos_ids", &self.eos_ids)
            .field("bos_id", &self.bos_id)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

impl TextTokenizer {
    pub fn new(inner: Tokenizer, eos_ids: Vec<u32>, bos_id: Option<u32>, add_bos: bool) -> Self {
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&id| id as usize + 1);
        TextTokenizer {
            inner,
            vocab_size,
            eos_ids,
            bos_id,
            add_bos,
        }
    }

    /// Loads an HF `tokenizer.json`.
    pub fn load_json(path: &Path) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Encodes text (special-token text becomes special ids), adding BOS when
    /// the model asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Decodes ids to text, dropping control tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The number of ids the tokenizer can produce: highest id + 1, over the
    /// model vocabulary and the added tokens (DeepSeek-V4: 128,000 BPE
    /// entries plus added tokens up to id 129,279, so 129,280). A model's
    /// embedding and head need at least this many rows. Counting tokens
    /// instead would be wrong when added tokens repeat vocabulary ids or
    /// leave gaps.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// Why `other` maps ids to different text than this tokenizer, if it
    /// does: a different id count, or the first id (lowest) whose token
    /// differs. Encoding rules (merges) may differ freely: a drafter is fed
    /// and verified by id, so only what each id means must agree.
    pub fn vocabulary_differs(&self, other: &TextTokenizer) -> Option<String> {
        if self.vocab_size != other.vocab_size {
            return Some(format!(
                "{} token ids against {}",
                self.vocab_size, other.vocab_size
            ));
        }
        let by_id = |t: &TextTokenizer| {
            let mut v: Vec<(u32, String)> = t
                .inner
                .get_vocab(true)
                .into_iter()
                .map(|(s, i)| (i, s))
                .collect();
            v.sort_unstable();
            v
        };
        let (mine, theirs) = (by_id(self), by_id(other));
        mine.iter()
            .zip(&theirs)
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                if a.0 != b.0 {
                    format!("id {} exists in only one of them", a.0.min(b.0))
                } else {
                    format!("id {} is {:?} against {:?}", a.0, a.1, b.1)
                }
            })
            .or_else(|| (mine.len() != theirs.len()).then(|| "their id sets differ".to_string()))
    }
}
