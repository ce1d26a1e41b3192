//! Chat templates: turn a message list into the exact prompt text a model was
//! trained on.
//!
//! GGUF and HF checkpoints ship Jinja templates; rather than embedding a Jinja
//! engine we recognise the template family (ChatML for the supported models)
//! and read its literal default system prompt out of the template text. An
//! unrecognised template is an error at load, never a silent guess.
//! DeepSeek-V4 ships no template at all: its loader picks
//! [`ChatTemplate::deepseek_v4`] by architecture (see `dsv4_chat.rs`).
//!
//! Invariant: only a template with a reasoning block renders a think
//! [`ReasoningMode`]; any other asks for one is a [`ChatError`].

use crate::io::row::ChatMessage;

use super::dsv4_chat;
use super::reasoning::ReasoningMode;
use super::tokenizer::TokenizerError;

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

/// A recognised chat template family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
    /// `<|im_start|>assistant\n`; a default system message is inserted when
    /// the chat does not start with one.
    ChatMl { default_system: Option<String> },
    /// DeepSeek-V4's own encoding, with its reasoning modes; no default
    /// system prompt.
    DeepseekV4,
}

/// Why a chat cannot be rendered by a template. Row-level: the row fails,
/// the job goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error(
        "message {index} has role `{role}`, which the {family} chat template cannot render (supported: system, user, assistant; tool messages and tool calls are not)"
    )]
    UnsupportedRole {
        index: usize,
        role: String,
        family: &'static str,
    },
    #[error("{}", no_final_user(.last.as_deref(), .family))]
    NoFinalUser {
        /// Role of the last message; `None` for an empty chat.
        last: Option<String>,
        family: &'static str,
    },
    #[error(
        "reasoning mode `{}` needs a thinking chat template (DeepSeek-V4); this model's is {family}",
        .mode.as_str()
    )]
    ReasoningUnsupported {
        mode: ReasoningMode,
        family: &'static str,
    },
}

fn no_final_user(last: Option<&str>, family: &str) -> String {
    match last {
        Some(role) => format!(
            "the {family} chat template needs the chat to end with a user message; it ends with `{role}`"
        ),
        None => format!("the {family} chat template needs at least one user message"),
    }
}

impl ChatTemplate {
    /// Recognises a model's Jinja chat template.
    pub fn detect(template: &str) -> Result<ChatTemplate, TokenizerError> {
        if template.contains(IM_START) && template.contains(IM_END) {
            return Ok(ChatTemplate::ChatMl {
                default_system: default_system_prompt(template),
            });
        }
        Err(TokenizerError::Unsupported(
            "chat template family (only ChatML `<|im_start|>` templates are supported)".into(),
        ))
    }

    /// The template of DeepSeek-V4 checkpoints (architecture `deepseek_v4`),
    /// which carry no Jinja template to detect.
    pub fn deepseek_v4() -> ChatTemplate {
        ChatTemplate::DeepseekV4
    }

    /// Short name for `inspect` and messages.
    pub fn family(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "chatml",
            ChatTemplate::DeepseekV4 => dsv4_chat::FAMILY,
        }
    }

    pub fn default_system(&self) -> Option<&str> {
        match self {
            ChatTemplate::ChatMl { default_system } => default_system.as_deref(),
            ChatTemplate::DeepseekV4 => None,
        }
    }

    /// True when the template renders the think [`ReasoningMode`]s.
    pub fn supports_reasoning(&self) -> bool {
        matches!(self, ChatTemplate::DeepseekV4)
    }

    /// Renders a chat, ending with the assistant turn's opening (for a
    /// thinking template, the opening `mode` asks for).
    /// `system` (the job's system prompt) replaces the model default; a chat
    /// that starts with its own system message keeps it.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        system: Option<&str>,
        mode: ReasoningMode,
    ) -> Result<String, ChatError> {
        let default_system = match self {
            ChatTemplate::DeepseekV4 => return dsv4_chat::render(messages, system, mode),
            ChatTemplate::ChatMl { .. } if mode.thinks() => {
                return Err(ChatError::ReasoningUnsupported {
                    mode,
                    family: self.family(),
                });
            }
            ChatTemplate::ChatMl { default_system } => default_system,
        };
        let mut out = String::new();
        let has_system = messages.first().is_some_and(|m| m.role == "system");
        if !has_system && let Some(sys) = system.or(default_system.as_deref()) {
            push_turn(&mut out, "system", sys);
        }
        for m in messages {
            push_turn(&mut out, &m.role, &m.content);
        }
        out.push_str(IM_START);
        out.push_str("assistant\n");
        Ok(out)
    }
}

fn push_turn(out: &mut String, role: &str, content: &str) {
    out.push_str(IM_START);
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str(IM_END);
    out.push('\n');
}

/// Finds a literal `<|im_start|>system\n...<|im_end|>` inside the template
/// source (newline written either as a real newline or as `\n` in a Jinja
/// string) whose body is plain text, not template code.
fn default_system_prompt(template: &str) -> Option<String> {
    let marker = format!("{IM_START}system");
    let mut rest = template;
    while let Some(at) = rest.find(&marker) {
        let after = &rest[at + marker.len()..];
        let body = after
            .strip_prefix("\\n")
            .or_else(|| after.strip_prefix('\n'));
        if let Some(body) = body
            && let Some(end) = body.find(IM_END)
        {
            let text = &body[..end];
            let is_literal = !text.is_empty()
                && !text.contains(['\'', '"', '{', '}', '+'])
                && !text.contains("\\n");
            if is_literal {
                return Some(text.to_string());
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const QWEN: &str = "{%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}";

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn reads_default_system_prompts_from_real_templates() {
        let s = ChatTemplate::detect(SMOLLM2).unwrap();
        assert_eq!(
            s.default_system(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let q = ChatTemplate::detect(QWEN).unwrap();
        assert_eq!(
            q.default_system(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
    }

    #[test]
    fn renders_chatml_with_default_job_and_own_system() {
        let t = ChatTemplate::detect(SMOLLM2).unwrap();
        let chat = [msg("user", "Hi")];
        let render =
            |chat: &[ChatMessage], system| t.render(chat, system, ReasoningMode::NonThink).unwrap();
        assert_eq!(
            render(&chat, None),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render(&chat, Some("Be brief.")),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = [
            msg("system", "S"),
            msg("user", "U"),
            msg("assistant", "A"),
            msg("user", "V"),
        ];
        assert_eq!(
            render(&own, Some("ignored")),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn chatml_refuses_think_modes() {
        let t = ChatTemplate::detect(SMOLLM2).unwrap();
        assert!(!t.supports_reasoning());
        for mode in [ReasoningMode::ThinkHigh, ReasoningMode::ThinkMax] {
            let e = t.render(&[msg("user", "Hi")], None, mode).unwrap_err();
            assert_eq!(
                e,
                ChatError::ReasoningUnsupported {
                    mode,
                    family: "chatml"
                }
            );
            assert!(e.to_string().contains(mode.as_str()), "{e}");
        }
    }

    #[test]
    fn deepseek_v4_hook() {
        let t = ChatTemplate::deepseek_v4();
        assert!(t.supports_reasoning());
        assert_eq!((t.family(), t.default_system()), ("deepseek_v4", None));
        assert_eq!(
            t.render(&[msg("user", "Hi")], Some("SYS"), ReasoningMode::ThinkHigh)
                .unwrap(),
            "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜><think>"
        );
    }

    #[test]
    fn rejects_unknown_template_families() {
        assert!(ChatTemplate::detect("[INST] {{ message }} [/INST]").is_err());
    }
}
