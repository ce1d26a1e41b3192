//! The tokenizer stage: an input row becomes an engine request (chat
//! template applied, tokenized, sampling settings and reasoning mode
//! resolved) or its error row.
//!
//! A think reasoning mode needs a model with a thinking chat template. Set
//! for the job, it is refused when the model is loaded
//! ([`check_job_reasoning`]); set by a row override, the row is an
//! `invalid_override` error row, raw prompts included: they would otherwise
//! get their output split at a `</think>` the model never learned.

use crate::engine::runner::Request;
use crate::engine::sampler::SamplingParams;
use crate::io::row::{ChatMessage, InputRow, Prompt, RowError, RowErrorKind, RowResult};
use crate::job::SpecError;
use crate::job::spec::{GenerationSpec, JobSpec, PromptFormat};
use crate::text::{ChatTemplate, ReasoningMode, TextTokenizer};

/// Why `mode` cannot run on a model with chat template `chat`, if it cannot.
fn reasoning_refusal(mode: ReasoningMode, chat: Option<&ChatTemplate>) -> Option<String> {
    if !mode.thinks() || chat.is_some_and(ChatTemplate::supports_reasoning) {
        return None;
    }
    Some(format!(
        "`{}` needs a thinking model (DeepSeek-V4); this model's chat template is {}",
        mode.as_str(),
        chat.map_or("absent", ChatTemplate::family)
    ))
}

/// The job-level rule, checked once the model is loaded: a think
/// `generation.reasoning` on a model without a thinking chat template is a
/// spec error, never a silent non-think run.
pub(crate) fn check_job_reasoning(
    spec: &JobSpec,
    chat: Option<&ChatTemplate>,
) -> Result<(), SpecError> {
    match reasoning_refusal(spec.generation.reasoning, chat) {
        None => Ok(()),
        Some(why) => Err(SpecError::ModelMismatch {
            field: "generation.reasoning",
            model: spec.model.clone(),
            message: format!("{why} (use `non_think`)"),
        }),
    }
}

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
        // A row already failed keeps its own error.
        if row.prompt.is_ok()
            && let Some(why) = reasoning_refusal(reasoning, self.chat)
        {
            let e = RowError::new(
                RowErrorKind::InvalidOverride,
                format!("overrides.reasoning: {why}"),
            );
            return Err(fail(row, e));
        }
        let text = match &row.prompt {
            Err(e) => {
                let e = e.clone();
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

#[cfg(test)]
mod tests {
    use tokenizers::Tokenizer;
    use tokenizers::models::wordlevel::WordLevel;

    use super::*;
    use crate::io::row::{RowKey, RowOverrides};

    const SMOLLM2: &str =
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}";

    /// Maps any text to one unknown-word id: enough for the encoder.
    fn tokenizer() -> TextTokenizer {
        let model = WordLevel::builder()
            .vocab([("[UNK]".to_string(), 0u32)].into_iter().collect())
            .unk_token("[UNK]".into())
            .build()
            .expect("word level model");
        TextTokenizer::new(Tokenizer::new(model), vec![0], None, false)
    }

    fn spec(extra: &str) -> JobSpec {
        let yaml = format!(
            "inputs:\n  paths: [d.parquet]\n  prompt_column: p\n  messages_column: m\n{extra}output:\n  path: o\n"
        );
        JobSpec::from_yaml(&yaml, "t.yaml").expect("valid spec")
    }

    fn row(messages: &[(&str, &str)], reasoning: Option<ReasoningMode>) -> InputRow {
        InputRow {
            key: RowKey {
                id: "r".into(),
                file_index: 0,
                input_file: "d.parquet".into(),
                input_row: 0,
            },
            prompt: Ok(Prompt::Messages(
                messages
                    .iter()
                    .map(|(role, content)| ChatMessage {
                        role: (*role).into(),
                        content: (*content).into(),
                    })
                    .collect(),
            )),
            overrides: RowOverrides {
                reasoning,
                ..RowOverrides::default()
            },
            pass_through: Vec::new(),
        }
    }

    #[test]
    fn job_and_row_modes_reach_the_request_on_deepseek_v4() {
        let tok = tokenizer();
        let chat = ChatTemplate::deepseek_v4();
        let spec = spec("generation:\n  reasoning: think_high\n");
        assert!(check_job_reasoning(&spec, Some(&chat)).is_ok());
        let enc = Encoder::new(&tok, Some(&chat), &spec);
        let req = enc.encode(row(&[("user", "Hi")], None)).expect("request");
        assert_eq!(req.reasoning, ReasoningMode::ThinkHigh);
        let req = enc
            .encode(row(&[("user", "Hi")], Some(ReasoningMode::NonThink)))
            .expect("request");
        assert_eq!(req.reasoning, ReasoningMode::NonThink);
    }

    #[test]
    fn unrenderable_chats_are_invalid_messages_rows() {
        let tok = tokenizer();
        let chat = ChatTemplate::deepseek_v4();
        let spec = spec("");
        let enc = Encoder::new(&tok, Some(&chat), &spec);
        for messages in [
            &[("user", "Hi"), ("assistant", "Hello")][..],
            &[("user", "Hi"), ("tool", "{}"), ("user", "Go")][..],
        ] {
            let res = enc.encode(row(messages, None)).expect_err("error row");
            let e = res.outcome.expect_err("error outcome");
            assert_eq!(e.kind, RowErrorKind::InvalidMessages, "{}", e.message);
            assert_eq!(res.prompt_tokens, 0);
        }
    }

    #[test]
    fn think_modes_on_a_chatml_model_are_refused() {
        let tok = tokenizer();
        let chat = ChatTemplate::detect(SMOLLM2).expect("chatml");
        // Job level: a spec error naming the field.
        let think = spec("generation:\n  reasoning: think_max\n");
        let e = check_job_reasoning(&think, Some(&chat)).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.starts_with("generation.reasoning: `think_max`"),
            "{text}"
        );
        assert!(text.contains("chatml"), "{text}");
        assert!(check_job_reasoning(&spec(""), Some(&chat)).is_ok());
        assert!(check_job_reasoning(&think, None).is_err());
        // Row level: an invalid_override row, raw prompts included.
        let raw = spec("  prompt_format: raw\n");
        let raw = JobSpec {
            inputs: crate::job::spec::InputSpec {
                messages_column: None,
                ..raw.inputs
            },
            ..raw
        };
        let enc = Encoder::new(&tok, Some(&chat), &raw);
        let mut r = row(&[], Some(ReasoningMode::ThinkHigh));
        r.prompt = Ok(Prompt::Text("Once upon".into()));
        let e = enc
            .encode(r)
            .expect_err("error row")
            .outcome
            .expect_err("err");
        assert_eq!(e.kind, RowErrorKind::InvalidOverride);
        assert!(
            e.message.contains("overrides.reasoning: `think_high`"),
            "{}",
            e.message
        );
        let plain = spec("");
        let enc = Encoder::new(&tok, Some(&chat), &plain);
        let req = enc
            .encode(row(&[("user", "Hi")], Some(ReasoningMode::NonThink)))
            .expect("non_think works on any model");
        assert_eq!(req.reasoning, ReasoningMode::NonThink);
    }
}
