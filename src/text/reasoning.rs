//! Reasoning modes of thinking models (DeepSeek-V4) and the split of a
//! generation into its reasoning and its answer.
//!
//! A mode decides two things: how the chat template ends the prompt (closed
//! `</think>` or open `<think>`, and for Think Max a preamble), and whether
//! the generated text is split at the first [`THINK_END`]. The split keeps
//! every generated character except that one marker, with whitespace as
//! generated, so `reasoning + "</think>" + answer` is the whole generation
//! (the official DeepSeek-V4 parser does not trim either side either).

use serde::{Deserialize, Serialize};

/// The marker that closes the reasoning block.
pub const THINK_END: &str = "</think>";

/// How much the model reasons before answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningMode {
    /// Answer at once: the prompt closes the reasoning block.
    #[default]
    NonThink,
    /// Reason first: the prompt opens the reasoning block.
    ThinkHigh,
    /// As `ThinkHigh`, with the official maximum-effort preamble first.
    ThinkMax,
}

impl ReasoningMode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [ReasoningMode; 3] = [
        ReasoningMode::NonThink,
        ReasoningMode::ThinkHigh,
        ReasoningMode::ThinkMax,
    ];

    /// The spelling in specs and override columns.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningMode::NonThink => "non_think",
            ReasoningMode::ThinkHigh => "think_high",
            ReasoningMode::ThinkMax => "think_max",
        }
    }

    /// Parses the spec spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<ReasoningMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// True for the modes where the model writes a reasoning block.
    pub fn thinks(self) -> bool {
        self != ReasoningMode::NonThink
    }

    /// Splits generated text into `(reasoning_text, output_text)`.
    ///
    /// Non-think: no reasoning, the text is the answer. Think modes: the
    /// reasoning is the text before the first `</think>` and the answer the
    /// text after it; when the row stopped before any `</think>` (length,
    /// stop string or EOS), all of it is reasoning and the answer is empty.
    pub fn split(self, text: String) -> (Option<String>, String) {
        if !self.thinks() {
            return (None, text);
        }
        match text.split_once(THINK_END) {
            Some((reasoning, answer)) => (Some(reasoning.to_string()), answer.to_string()),
            None => (Some(text), String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_reject_others() {
        for m in ReasoningMode::ALL {
            assert_eq!(ReasoningMode::parse(m.as_str()), Some(m));
        }
        for bad in ["", "think", "Think_High", "non-think", " think_max"] {
            assert_eq!(ReasoningMode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ReasoningMode::default(), ReasoningMode::NonThink);
    }

    #[test]
    fn non_think_keeps_everything_as_the_answer() {
        let (r, a) = ReasoningMode::NonThink.split("a</think>b".into());
        assert_eq!((r, a.as_str()), (None, "a</think>b"));
    }

    #[test]
    fn think_modes_split_at_the_first_marker_keeping_whitespace() {
        for m in [ReasoningMode::ThinkHigh, ReasoningMode::ThinkMax] {
            let (r, a) = m.split("Let me see.\n</think>\n\nIt is 4.</think>x".into());
            assert_eq!(r.as_deref(), Some("Let me see.\n"));
            assert_eq!(a, "\n\nIt is 4.</think>x");
            let (r, a) = m.split("</think>".into());
            assert_eq!((r.as_deref(), a.as_str()), (Some(""), ""));
        }
    }

    #[test]
    fn think_without_marker_is_all_reasoning() {
        let (r, a) = ReasoningMode::ThinkHigh.split("still thinking".into());
        assert_eq!((r.as_deref(), a.as_str()), (Some("still thinking"), ""));
        let (r, a) = ReasoningMode::ThinkMax.split(String::new());
        assert_eq!((r.as_deref(), a.as_str()), (Some(""), ""));
    }
}
