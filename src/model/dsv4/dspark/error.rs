//! Why a draft step or an absorb cannot run: inputs that disagree with the
//! draft state or the model. Nothing is changed when one is returned.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsparkError {
    #[error(
        "absorb of {rows} rows starts at position {pos0}, but the draft state holds {len} \
         positions (a later start needs at least a window of {window} rows)"
    )]
    Gap {
        len: usize,
        pos0: usize,
        rows: usize,
        window: usize,
    },
    #[error("main_hidden has {len} values, not whole rows of {width}")]
    HiddenWidth { len: usize, width: usize },
    #[error("token {token} is outside the vocabulary of {vocab}")]
    Token { token: u32, vocab: usize },
    #[error(
        "the draft state has {stages} stages and a window of {window}; this drafter has \
         {expected_stages} and {expected_window}"
    )]
    ForeignState {
        stages: usize,
        window: usize,
        expected_stages: usize,
        expected_window: usize,
    },
}
