//! Text side of the pipeline: tokenizers (from GGUF metadata or
//! `tokenizer.json`), chat templates, reasoning modes, incremental
//! detokenization and stop strings. Nothing here touches the model or a
//! device.

pub mod chat;
pub mod detok;
mod dsv4_chat;
pub mod gguf_vocab;
pub mod reasoning;
pub mod tokenizer;

pub use chat::{ChatError, ChatTemplate};
pub use detok::{IncrementalDecoder, StopMatcher};
pub use gguf_vocab::GgufVocab;
pub use reasoning::ReasoningMode;
pub use tokenizer::{TextTokenizer, TokenizerError};
