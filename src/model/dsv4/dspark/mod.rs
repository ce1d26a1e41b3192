//! DeepSeek-V4's DSpark draft module (`shared/reference/dspark.md` §1.2),
//! model side: the checkpoint's `mtp.*` stages, the target-side capture of
//! `main_hidden`, a per-sequence [`DraftState`], and one draft round for a
//! batch of sequences.
//!
//! A round, per sequence whose state holds positions `0..len`:
//! 1. Context: every absorbed position's `main_hidden` (the mean of the hc
//!    streams after each target layer, concatenated) becomes `main_x =
//!    main_norm(main_proj(main_hidden))`; each stage keeps
//!    `kv_norm(wkv(main_x))`, rotated at the position, in a ring of the
//!    model's `sliding_window` slots ([`Drafter::absorb`]).
//! 2. Parallel stage: the block `[anchor, noise × (γ − 1)]` at positions
//!    `len..len + γ`, embedded with the target embedding into `hc` copies,
//!    runs through the stages; each is a normal V4 block whose attention
//!    sees the ring plus all γ block keys (bidirectional, with sinks); then
//!    `hc_head`, `norm` and the target head give γ base logit rows (f32).
//! 3. Sequential stage: for i in 0..γ, row i gets the Markov bias
//!    `markov_w2 · markov_w1[prev]` (prev = the anchor, then the token drawn
//!    at i − 1) and the caller's sampler draws token i from it; confidence
//!    logit i is `proj · [x_i ; markov_w1[prev]]`, x taken before `norm`
//!    ([`Drafter::draft`]).
//!
//! Choices the sources leave open, made here:
//! - RoPE of the window-only stages: `rope_theta` without YaRN, the table of
//!   the target's ratio-0 layers, since each stage is built as a layer with
//!   compress ratio 0 (ports agree; `dspark.md` §8 item 4 lists it as
//!   unverified).
//! - The ring has `sliding_window` slots (the attention's window size, 128
//!   on V4-Flash, the "128-slot ring" of the spec); every block query sees
//!   all valid slots, not a per-query window.
//! - Official precision: block K/V take the same bf16 + FP8 (non-RoPE dims,
//!   blocks of 64) round trip as the context K/V and the target's window
//!   rows; the captured `main_hidden` is rounded to bf16; the Markov bias
//!   and the confidence run in f32 on the bf16 tables, as the head does.
//! - The confidence head has no bias (the V4 checkpoint lists only
//!   `proj.weight`); its output is a logit, the sigmoid is the caller's.

pub mod absorb;
pub mod attention;
pub mod capture;
pub mod config;
pub mod draft;
pub mod error;
pub mod markov;
pub mod state;
pub mod weights;

use super::config::LayerKind;
use super::forward::Dsv4Model;
use super::rope::Rope;
use config::DsparkConfig;
use error::DsparkError;
use state::DraftState;
use weights::DsparkWeights;

/// The draft module of a loaded model, borrowed with the model whose
/// embedding, head and numerics it shares.
#[derive(Debug)]
pub struct Drafter<'m> {
    model: &'m Dsv4Model,
    weights: &'m DsparkWeights,
    config: &'m DsparkConfig,
    rope: Rope,
}

impl Dsv4Model {
    /// The DSpark drafter, when the checkpoint has a draft module.
    pub fn drafter(&self) -> Option<Drafter<'_>> {
        let c = self.config();
        Some(Drafter {
            model: self,
            weights: self.weights.dspark.as_ref()?,
            config: c.dspark.as_ref()?,
            rope: Rope::for_layer(c, LayerKind::Sliding),
        })
    }
}

impl Drafter<'_> {
    pub fn config(&self) -> &DsparkConfig {
        self.config
    }

    /// The main layers to capture ([`Dsv4Model::forward_capture`]).
    pub fn target_layers(&self) -> &[usize] {
        &self.config.target_layers
    }

    /// Target rows worth capturing per chunk: the ring keeps no more.
    pub fn context_window(&self) -> usize {
        self.model.config().window
    }

    pub fn new_state(&self) -> DraftState {
        let c = self.model.config();
        DraftState::new(self.weights.stages.len(), c.window, c.head_dim)
    }

    /// Bytes of one sequence's [`DraftState`] (fixed, whatever its length).
    pub fn state_bytes(&self) -> usize {
        let c = self.model.config();
        self.weights.stages.len() * c.window * c.head_dim * 4
    }

    fn check_state(&self, s: &DraftState) -> Result<(), DsparkError> {
        let c = self.model.config();
        s.check_shape(self.weights.stages.len(), c.window, c.head_dim)
    }

    fn check_token(&self, token: u32) -> Result<(), DsparkError> {
        let vocab = self.model.config().vocab_size;
        if (token as usize) < vocab {
            return Ok(());
        }
        Err(DsparkError::Token { token, vocab })
    }
}
