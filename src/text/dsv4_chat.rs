//! The DeepSeek-V4 chat encoding, for plain system / user / assistant chats.
//!
//! DeepSeek-V4 ships no Jinja template; its prompt format is defined by the
//! official `encoding/encoding_dsv4.py` (shared/reference/deepseek-v4.md §5).
//! This renders the subset without tools, as that script does with
//! `drop_thinking` on:
//!
//! ```text
//! BOS [Think Max preamble] {system} <｜User｜>{user}<｜Assistant｜></think>{assistant}EOS
//!     <｜User｜>{user}<｜Assistant｜>{</think> | <think>}
//! ```
//!
//! Invariants: BOS is written as text (the tokenizer maps it to id 0; the
//! model does not add one); system content is raw, with no marker; earlier
//! assistant turns carry only their content (their reasoning is dropped, and
//! a message has no reasoning field anyway) and end with EOS; only the final
//! user turn opens a reasoning block. Tool messages, tool calls (DSML) and
//! the `developer` / `latest_reminder` roles are not supported: they are a
//! [`ChatError`], never a guess.

use super::chat::ChatError;
use super::reasoning::{ReasoningMode, THINK_END};
use crate::io::row::ChatMessage;

const BOS: &str = "<｜begin▁of▁sentence｜>";
const EOS: &str = "<｜end▁of▁sentence｜>";
const USER: &str = "<｜User｜>";
const ASSISTANT: &str = "<｜Assistant｜>";
const THINK_START: &str = "<think>";

/// `REASONING_EFFORT_MAX`, the official Think Max preamble, verbatim: it is
/// data the model was trained on. Source: `encoding/encoding_dsv4.py` as
/// stored in the public repository `supermy/ds4rs` (a copy of the script
/// from the DeepSeek-V4 model repository).
const REASONING_EFFORT_MAX: &str = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n\
You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n\
Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

/// Name of this template in messages and `inspect`.
pub(super) const FAMILY: &str = "deepseek_v4";

/// Renders `messages` (the job's `system` first when the chat has no system
/// message of its own) into a prompt that ends where the model's answer
/// starts.
pub(super) fn render(
    messages: &[ChatMessage],
    system: Option<&str>,
    mode: ReasoningMode,
) -> Result<String, ChatError> {
    for (index, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
            return Err(ChatError::UnsupportedRole {
                index,
                role: m.role.clone(),
                family: FAMILY,
            });
        }
    }
    // The format only opens an answer after a user turn; a chat ending with
    // an assistant or system message would leave the model nowhere to start.
    match messages.last() {
        Some(m) if m.role == "user" => {}
        last => {
            return Err(ChatError::NoFinalUser {
                last: last.map(|m| m.role.clone()),
                family: FAMILY,
            });
        }
    }
    let mut out = String::from(BOS);
    if mode == ReasoningMode::ThinkMax {
        out.push_str(REASONING_EFFORT_MAX);
    }
    let has_system = messages.first().is_some_and(|m| m.role == "system");
    if !has_system && let Some(sys) = system {
        out.push_str(sys);
    }
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "user" => {
                out.push_str(USER);
                out.push_str(&m.content);
                match messages.get(i + 1) {
                    // The turn being answered: the mode picks the opening.
                    None => {
                        out.push_str(ASSISTANT);
                        out.push_str(if mode.thinks() {
                            THINK_START
                        } else {
                            THINK_END
                        });
                    }
                    // An earlier answered turn: always a closed reasoning block.
                    Some(next) if next.role == "assistant" => {
                        out.push_str(ASSISTANT);
                        out.push_str(THINK_END);
                    }
                    Some(_) => {}
                }
            }
            "assistant" => {
                out.push_str(&m.content);
                out.push_str(EOS);
            }
            _ => out.push_str(&m.content),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    fn two_turns() -> Vec<ChatMessage> {
        vec![
            msg("system", "SYS"),
            msg("user", "Hi"),
            msg("assistant", "Hello!"),
            msg("user", "Again"),
        ]
    }

    const HISTORY: &str = "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜></think>Hello!<｜end▁of▁sentence｜><｜User｜>Again<｜Assistant｜>";

    #[test]
    fn single_turn_in_each_mode() {
        let chat = [msg("system", "SYS"), msg("user", "Hi")];
        let head = "<｜begin▁of▁sentence｜>SYS<｜User｜>Hi<｜Assistant｜>";
        assert_eq!(
            render(&chat, None, ReasoningMode::NonThink).unwrap(),
            format!("{head}</think>")
        );
        assert_eq!(
            render(&chat, None, ReasoningMode::ThinkHigh).unwrap(),
            format!("{head}<think>")
        );
    }

    #[test]
    fn multi_turn_closes_earlier_turns_whatever_the_mode() {
        let chat = two_turns();
        assert_eq!(
            render(&chat, None, ReasoningMode::NonThink).unwrap(),
            format!("{HISTORY}</think>")
        );
        assert_eq!(
            render(&chat, None, ReasoningMode::ThinkHigh).unwrap(),
            format!("{HISTORY}<think>")
        );
    }

    #[test]
    fn think_max_puts_the_preamble_right_after_bos() {
        let got = render(&two_turns(), None, ReasoningMode::ThinkMax).unwrap();
        let want = format!(
            "<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum with no shortcuts permitted.\nYou MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\nExplicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n{}<think>",
            &HISTORY[BOS.len()..]
        );
        assert_eq!(got, want);
        // Without a system message the preamble still comes first.
        let got = render(&[msg("user", "Q")], None, ReasoningMode::ThinkMax).unwrap();
        assert_eq!(
            got,
            format!("{BOS}{REASONING_EFFORT_MAX}<｜User｜>Q<｜Assistant｜><think>")
        );
    }

    #[test]
    fn system_from_chat_job_or_none() {
        let bare = [msg("user", "Hi")];
        assert_eq!(
            render(&bare, None, ReasoningMode::NonThink).unwrap(),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>"
        );
        assert_eq!(
            render(&bare, Some("Be brief."), ReasoningMode::NonThink).unwrap(),
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜></think>"
        );
        // The chat's own system message wins over the job's.
        assert_eq!(
            render(&two_turns(), Some("ignored"), ReasoningMode::NonThink).unwrap(),
            format!("{HISTORY}</think>")
        );
    }

    #[test]
    fn consecutive_user_turns_get_one_assistant_opening() {
        let chat = [msg("user", "A"), msg("user", "B")];
        assert_eq!(
            render(&chat, None, ReasoningMode::ThinkHigh).unwrap(),
            "<｜begin▁of▁sentence｜><｜User｜>A<｜User｜>B<｜Assistant｜><think>"
        );
    }

    #[test]
    fn tool_and_other_roles_are_errors() {
        for role in ["tool", "developer", "latest_reminder", "function"] {
            let chat = [msg("user", "Hi"), msg(role, "x"), msg("user", "Go")];
            let e = render(&chat, None, ReasoningMode::NonThink).unwrap_err();
            assert_eq!(
                e,
                ChatError::UnsupportedRole {
                    index: 1,
                    role: role.into(),
                    family: FAMILY
                }
            );
            assert!(e.to_string().contains("tool"), "{e}");
        }
    }

    #[test]
    fn chat_must_end_with_a_user_turn() {
        let chat = [msg("user", "Hi"), msg("assistant", "Hello")];
        let e = render(&chat, None, ReasoningMode::NonThink).unwrap_err();
        assert!(e.to_string().contains("`assistant`"), "{e}");
        let e = render(&[], None, ReasoningMode::NonThink).unwrap_err();
        assert_eq!(
            e,
            ChatError::NoFinalUser {
                last: None,
                family: FAMILY
            }
        );
    }
}
