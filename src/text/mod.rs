//! Text side of the pipeline: tokenizers (from GGUF metadata or
//! `tokenizer.json`), chat templates, incremental detokenization and stop
//! strings. Nothing here touches the model or a device.

pub mod chat;
pub mod detok;
pub mod gguf_vocab;
pub mod tokenizer;

pub use chat::ChatTemplate;
pub use detok::{IncrementalDecoder, StopMatcher};
pub use gguf_vocab::GgufVocab;
pub use tokenizer::{TextTokenizer, TokenizerError};
