//! The tokenizer stage: an input row becomes an engine request (chat
//! template applied, tokenized, sampling settings and reasoning mode
//! resolved) or its error row.
//!
//! A think reasoning mode on a model without a thinking chat template can
//! only come from a row override here (the job-level setting is refused
//! when the model is loaded), so it is an `invalid_override` row, raw
//! prompts included: they would otherwise get their output split at a
//! `</think>` the model never learned.

use crate::engine::runner::Request;
use crate::engine::sampler::SamplingParams;
use crate::io::row::{ChatMessage, InputRow, Prompt, RowError, RowErrorKind, RowResult};
use crate::job::spec::{GenerationSpec, JobSpec, PromptFormat};
use crate::text::{ChatTemplate, TextTokenizer};

/// What the tokenizer stage needs to turn rows into requests.
pub(crate) struct Encoder<'a> {
    tokenizer: &'a TextTokenizer,
    chat: Option<&'a ChatTemplate>,
    format: PromptFormat,
    generation: &'a GenerationSpec,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(
        tokenizer: &'a TextTokenizer,
        chat: Option<&'a ChatTemplate>,
        spec: &'a JobSpec,
    ) -> Self {
        Encoder {
            tokenizer,
            chat,
            format: spec.inputs.prompt_format,
            generation: &spec.generation,
        }
    }

    /// Turns an input row into an engine request, or into its error row.
    pub(crate) fn encode(&self, row: InputRow) -> Result<Request, Box<RowResult>> {
        let g = self.generation;
        let o = &row.overrides;
        let sampling = SamplingParams {
            temperature: o.temperature.unwrap_or(g.temperature),
            top_p: o.top_p.unwrap_or(g.top_p),
            top_k: o.top_k.unwrap_or(g.top_k),
            seed: o.seed.unwrap_or(g.seed),
        };
        let reasoning = o.reasoning.unwrap_or(g.reasoning);
        // Rows that fail here never reach the tokenizer: 0 prompt tokens.
        let fail = |row: InputRow, err: RowError| {
            Box::new(RowResult {
                key: row.key,
                outcome: Err(err),
                seed: sampling.seed,
                prompt_tokens: 0,
                pass_through: row.pass_through,
            })
        };
        let text = match &row.prompt {
            Err(e) => {
                let e = e.clone();
                return Err(fail(row, e));
            }
            Ok(_)
                if reasoning.thinks()
                    && !self.chat.is_some_and(ChatTemplate::supports_reasoning) =>
            {
                let e = RowError::new(
                    RowErrorKind::InvalidOverride,
                    format!(
                        "overrides.reasoning: `{}` needs a thinking model (DeepSeek-V4); this model's chat template is {}",
                        reasoning.as_str(),
                        self.chat.map_or("absent", ChatTemplate::family)
                    ),
                );
                return Err(fail(row, e));
            }
            Ok(Prompt::Text(t)) if self.format == PromptFormat::Raw => t.clone(),
            Ok(prompt) => {
                let Some(chat) = self.chat else {
                    let e = RowError::new(
                        RowErrorKind::InvalidMessages,
                        "the model has no chat template; use `prompt_format: raw` with a prompt column",
                    );
                    return Err(fail(row, e));
                };
                let single;
                let messages = match prompt {
                    Prompt::Messages(m) => m.as_slice(),
                    Prompt::Text(t) => {
                        single = [ChatMessage {
                            role: "user".into(),
                            content: t.clone(),
                        }];
                        &single
                    }
                };
                match chat.render(messages, g.system_prompt.as_deref(), reasoning) {
                    Ok(text) => text,
                    Err(e) => {
                        let e = RowError::new(RowErrorKind::InvalidMessages, e.to_string());
                        return Err(fail(row, e));
                    }
                }
            }
        };
        match self.tokenizer.encode(&text) {
            Ok(ids) => Ok(Request {
                max_new_tokens: o.max_new_tokens.unwrap_or(g.max_new_tokens) as usize,
                sampling,
                reasoning,
                prompt: ids,
                key: row.key,
                pass_through: row.pass_through,
                group: None,
            }),
            Err(e) => {
                let e = RowError::new(RowErrorKind::TokenizationFailed, e.to_string());
                Err(fail(row, e))
            }
        }
    }
}
