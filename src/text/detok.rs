//! Incremental detokenization and stop strings.
//!
//! Byte-level BPE tokens can split a UTF-8 character, so text is emitted only
//! once the decoded tail is complete (no trailing U+FFFD). Stop strings are
//! searched in the text emitted so far; the output is cut before the first
//! match.

use super::tokenizer::{TextTokenizer, TokenizerError};

/// Turns a growing list of generated ids into text, a piece at a time.
#[derive(Debug, Default, Clone)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    /// Start of the ids re-decoded for context (so merges across the boundary
    /// such as a leading space decode correctly).
    prefix_offset: usize,
    /// Ids before this index have been emitted as text.
    read_offset: usize,
    text: String,
}

impl IncrementalDecoder {
    /// Adds one id; returns the newly completed text (possibly empty).
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<&str, TokenizerError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let after = tok.decode(&self.ids[self.prefix_offset..])?;
        let start = self.text.len();
        if after.len() > before.len()
            && !after.ends_with('\u{FFFD}')
            && after.is_char_boundary(before.len())
        {
            self.text.push_str(&after[before.len()..]);
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(&self.text[start..])
    }

    /// All text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The complete text of every id pushed, including a trailing partial
    /// character (as U+FFFD) that `push` held back.
    pub fn finish(&self, tok: &TextTokenizer) -> Result<String, TokenizerError> {
        tok.decode(&self.ids)
    }
}

/// Finds the first stop string in generated text.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    longest: usize,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        StopMatcher { stops, longest }
    }

    /// Byte offset where the earliest stop string starts in `text`, looking
    /// only at matches that end inside the last `new_len` bytes (earlier text
    /// was checked on previous calls).
    pub fn find(&self, text: &str, new_len: usize) -> Option<usize> {
        if self.stops.is_empty() || new_len == 0 {
            return None;
        }
        let mut from = text.len().saturating_sub(new_len + self.longest - 1);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let window = &text[from..];
        self.stops
            .iter()
            .filter_map(|s| window.find(s.as_str()).map(|i| from + i))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_matcher_finds_matches_spanning_pieces() {
        let m = StopMatcher::new(&["END".to_string(), "\n\n".to_string()]);
        let mut text = String::new();
        let mut hit = None;
        for piece in ["abc E", "N", "D more"] {
            text.push_str(piece);
            if hit.is_none() {
                hit = m.find(&text, piece.len());
            }
        }
        assert_eq!(hit, Some(4));
        assert_eq!(m.find("x\n\ny", 4), Some(1));
        assert_eq!(m.find("nothing here", 12), None);
        assert_eq!(StopMatcher::new(&[]).find("END", 3), None);
    }

    #[test]
    fn stop_matcher_handles_multibyte_text() {
        let m = StopMatcher::new(&["ß".to_string()]);
        assert_eq!(m.find("日本ß", 2), Some(6));
    }
}
