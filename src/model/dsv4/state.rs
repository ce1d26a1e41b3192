//! One sequence's long-context state, layer by layer: the sliding-window ring
//! of raw KV rows, the compressed rows of CSA/HCA layers, the indexer keys of
//! CSA layers, the open compressor windows, and the undo record of the
//! latest chunk (`undo.rs`).
//!
//! Invariant: `len` tokens (positions `0..len`) have been fed; the ring holds
//! the last `min(len, window)` rows at slot `pos % window`, and every layer
//! holds exactly `len / ratio` compressed rows.
//!
//! Memory is accounted exactly from what is stored (f32 values): a fixed part
//! per sequence (rings, open windows and the undo record, allocated at its
//! bound) plus rows that grow with length.

use super::compressor::CompressorState;
use super::config::{Dsv4Config, LayerKind};
use super::undo::{LayerUndo, undo_positions};
use super::weights::Dsv4Weights;

#[derive(Debug, Clone)]
pub struct LayerState {
    /// `window × head_dim`, slot `pos % window`.
    pub ring: Vec<f32>,
    /// `entries × head_dim`.
    pub compressed: Vec<f32>,
    pub compressor: Option<CompressorState>,
    /// `entries × index_head_dim` (CSA layers).
    pub index_keys: Vec<f32>,
    pub index_compressor: Option<CompressorState>,
    /// What the latest chunk overwrote in this layer.
    pub undo: LayerUndo,
}

#[derive(Debug, Clone)]
pub struct SeqState {
    pub len: usize,
    pub layers: Vec<LayerState>,
    /// First position of the latest chunk when it can be undone.
    pub undo_from: Option<usize>,
    /// The longest chunk an undo record covers.
    pub undo_positions: usize,
}

impl SeqState {
    pub fn new(w: &Dsv4Weights) -> SeqState {
        let c = &w.config;
        let positions = undo_positions(c);
        let layers = w
            .layers
            .iter()
            .map(|b| {
                let index = b.attn.indexer.as_ref().map(|i| &i.compressor);
                LayerState {
                    ring: vec![0.0; c.window * c.head_dim],
                    compressed: Vec::new(),
                    compressor: b.attn.compressor.as_ref().map(CompressorState::new),
                    index_keys: Vec::new(),
                    index_compressor: index.map(CompressorState::new),
                    undo: LayerUndo::new(positions, c.head_dim, b.attn.compressor.as_ref(), index),
                }
            })
            .collect();
        SeqState {
            len: 0,
            layers,
            undo_from: None,
            undo_positions: positions,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                (l.ring.len() + l.compressed.len() + l.index_keys.len()) * 4
                    + l.compressor.as_ref().map_or(0, CompressorState::bytes)
                    + l.index_compressor
                        .as_ref()
                        .map_or(0, CompressorState::bytes)
                    + l.undo.bytes()
            })
            .sum()
    }
}

/// KV memory of one sequence as a function of its length.
#[derive(Debug, Clone, PartialEq)]
pub struct KvFootprint {
    /// Rings, open compressor windows and undo records, whatever the
    /// length.
    pub fixed: usize,
    /// Per layer: (kind, ratio, bytes per compressed entry).
    pub layers: Vec<(LayerKind, usize, usize)>,
}

impl KvFootprint {
    pub fn new(c: &Dsv4Config) -> KvFootprint {
        let mut fixed = 0;
        let mut layers = Vec::new();
        // The undo record saves, per position, one ring row and one kv and
        // one score row of each open window.
        let undo = undo_positions(c);
        for i in 0..c.n_layers {
            let kind = c.kind(i);
            let ratio = c.compress_ratios[i];
            fixed += (c.window + undo) * c.head_dim * 4;
            let entry = match kind {
                LayerKind::Sliding => 0,
                LayerKind::Hca => {
                    fixed += 2 * (ratio + undo) * c.head_dim * 4;
                    c.head_dim * 4
                }
                LayerKind::Csa => {
                    // Two windows of 2·dim-wide rows, kv and score, for the
                    // compressor and for the indexer's compressor.
                    fixed += 2 * (2 * ratio + undo) * (2 * c.head_dim) * 4;
                    fixed += 2 * (2 * ratio + undo) * (2 * c.index_head_dim) * 4;
                    (c.head_dim + c.index_head_dim) * 4
                }
            };
            layers.push((kind, ratio, entry));
        }
        KvFootprint { fixed, layers }
    }

    /// Exact bytes of a sequence of `len` tokens.
    pub fn bytes(&self, len: usize) -> usize {
        self.fixed
            + self
                .layers
                .iter()
                .filter(|(_, r, _)| *r > 0)
                .map(|(_, r, e)| len / r * e)
                .sum::<usize>()
    }

    /// Whole bytes per token that never undercount the growth of a
    /// sequence: the steady-state sum over layers, rounded up.
    pub fn bytes_per_token_bound(&self) -> usize {
        let growth: f64 = self.per_token_by_kind().iter().map(|(_, b)| b).sum();
        (growth.ceil() as usize).max(1)
    }

    /// A KV budget that holds `rows` sequences of `tokens` tokens each.
    pub fn budget(&self, rows: usize, tokens: usize) -> usize {
        rows * (self.fixed + tokens * self.bytes_per_token_bound())
    }

    /// Steady-state bytes per token, by layer kind: (sliding, CSA, HCA).
    pub fn per_token_by_kind(&self) -> [(LayerKind, f64); 3] {
        let sum = |k: LayerKind| {
            self.layers
                .iter()
                .filter(|(kind, r, _)| *kind == k && *r > 0)
                .map(|(_, r, e)| *e as f64 / *r as f64)
                .sum::<f64>()
        };
        [
            (LayerKind::Sliding, 0.0),
            (LayerKind::Csa, sum(LayerKind::Csa)),
            (LayerKind::Hca, sum(LayerKind::Hca)),
        ]
    }
}
