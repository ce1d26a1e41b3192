//! The Lightning indexer's selection for CSA layers: for each query, the
//! top-k compressed entries by `Σ_h w_h · relu(q_h · key)` among the entries
//! visible to it, ties to the lower entry id.
//!
//! At long context this scan dominates a CSA layer (a query at position p
//! scores p/4 keys), so queries are processed in tiles that read each block
//! of keys once, the block is transposed so the dot products vectorize
//! across keys, and the top-k is kept by a running threshold instead of
//! sorting every score.
//!
//! Invariant: a (query, key) score is the same sum in the same order
//! whatever the tile, block or batch, so chunked prefill selects exactly
//! what a full forward selects.

use rayon::prelude::*;

/// Keys scored together per query.
const KEY_BLOCK: usize = 64;
/// Queries that share one read of each key block.
const QUERY_TILE: usize = 16;

/// One query of the indexer.
#[derive(Debug, Clone, Copy)]
pub struct IndexQuery<'a> {
    /// `heads × dim`.
    pub q: &'a [f32],
    /// `heads`, already scaled.
    pub weights: &'a [f32],
    /// Entries `0..visible` may be selected.
    pub visible: usize,
}

/// The selected entry ids of each query, ascending. `keys` is
/// `entries × dim`; a query with at most `k` visible entries takes them all.
pub fn select(queries: &[IndexQuery<'_>], keys: &[f32], dim: usize, k: usize) -> Vec<Vec<usize>> {
    queries
        .par_chunks(QUERY_TILE)
        .flat_map_iter(|tile| select_tile(tile, keys, dim, k))
        .collect()
}

fn select_tile(tile: &[IndexQuery<'_>], keys: &[f32], dim: usize, k: usize) -> Vec<Vec<usize>> {
    let mut best: Vec<TopK> = tile.iter().map(|_| TopK::new(k)).collect();
    let scanned = tile
        .iter()
        .filter(|q| q.visible > k)
        .map(|q| q.visible)
        .max()
        .unwrap_or(0);
    let mut block = vec![0.0f32; dim * KEY_BLOCK];
    let mut scores = [0.0f32; KEY_BLOCK];
    for b0 in (0..scanned).step_by(KEY_BLOCK) {
        let width = KEY_BLOCK.min(scanned - b0);
        transpose_block(&keys[b0 * dim..(b0 + width) * dim], dim, &mut block);
        for (q, top) in tile.iter().zip(best.iter_mut()) {
            if q.visible <= k || q.visible <= b0 {
                continue;
            }
            score_block(q.q, q.weights, &block, dim, &mut scores);
            let live = width.min(q.visible - b0);
            if top.rejects_all(&scores[..live]) {
                continue;
            }
            for (j, &s) in scores[..live].iter().enumerate() {
                top.offer(s, b0 + j);
            }
        }
    }
    tile.iter()
        .zip(best)
        .map(|(q, top)| {
            if q.visible <= k {
                (0..q.visible).collect()
            } else {
                top.into_ids()
            }
        })
        .collect()
}

/// `rows × dim` keys into `block[d * KEY_BLOCK + j]`; missing rows are 0.
fn transpose_block(rows: &[f32], dim: usize, block: &mut [f32]) {
    block.fill(0.0);
    for (j, key) in rows.chunks_exact(dim).enumerate() {
        for (d, &v) in key.iter().enumerate() {
            block[d * KEY_BLOCK + j] = v;
        }
    }
}

/// Scores of one query against a transposed key block.
fn score_block(q: &[f32], weights: &[f32], block: &[f32], dim: usize, out: &mut [f32; KEY_BLOCK]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { score_block_avx2(q, weights, block, dim, out) };
        return;
    }
    score_block_portable(q, weights, block, dim, out);
}

/// The portable loop compiled for AVX2. Rust never contracts `a * b + c`
/// into an FMA, so both builds compute bit-identical scores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn score_block_avx2(
    q: &[f32],
    weights: &[f32],
    block: &[f32],
    dim: usize,
    out: &mut [f32; KEY_BLOCK],
) {
    score_block_portable(q, weights, block, dim, out);
}

/// Per key j: `Σ_h w_h · relu(Σ_d q_h[d] · key_j[d])`, each sum in index
/// order from 0.
#[inline(always)]
fn score_block_portable(
    q: &[f32],
    weights: &[f32],
    block: &[f32],
    dim: usize,
    out: &mut [f32; KEY_BLOCK],
) {
    out.fill(0.0);
    for (qh, &w) in q.chunks_exact(dim).zip(weights) {
        let mut dot = [0.0f32; KEY_BLOCK];
        for (&qd, kd) in qh.iter().zip(block.chunks_exact(KEY_BLOCK)) {
            for (acc, &kv) in dot.iter_mut().zip(kd) {
                *acc += qd * kv;
            }
        }
        for (o, d) in out.iter_mut().zip(dot) {
            *o += w * d.max(0.0);
        }
    }
}

/// The best `k` (score, id) pairs seen so far, by (score desc, id asc).
///
/// Ids arrive in ascending order, so a later entry with a score equal to
/// the current k-th best can never enter: every kept entry ranks ahead of
/// it. That makes the threshold test a single `>`.
struct TopK {
    k: usize,
    kept: Vec<(f32, usize)>,
    /// The k-th best score once `kept` has been cut to `k`.
    threshold: Option<f32>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            kept: Vec::with_capacity(2 * k),
            threshold: None,
        }
    }

    fn offer(&mut self, score: f32, id: usize) {
        if self.threshold.is_some_and(|t| score <= t) {
            return;
        }
        self.kept.push((score, id));
        if self.kept.len() == 2 * self.k {
            self.cut();
        }
    }

    /// Whether [`TopK::offer`] would drop every one of `scores` (the usual
    /// case deep into a long scan, checked without branching per score).
    fn rejects_all(&self, scores: &[f32]) -> bool {
        self.threshold
            .is_some_and(|t| scores.iter().fold(true, |all, &s| all & (s <= t)))
    }

    fn cut(&mut self) {
        let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        self.kept.select_nth_unstable_by(self.k - 1, order);
        self.kept.truncate(self.k);
        self.threshold = Some(self.kept[self.k - 1].0);
    }

    fn into_ids(mut self) -> Vec<usize> {
        if self.kept.len() > self.k {
            self.cut();
        }
        let mut ids: Vec<usize> = self.kept.iter().map(|&(_, id)| id).collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every score by the definition, then a full sort.
    fn select_by_sorting(q: &IndexQuery<'_>, keys: &[f32], dim: usize, k: usize) -> Vec<usize> {
        let mut scored: Vec<(f32, usize)> = (0..q.visible)
            .map(|s| {
                let key = &keys[s * dim..(s + 1) * dim];
                let mut total = 0.0f32;
                for (qh, &w) in q.q.chunks_exact(dim).zip(q.weights) {
                    let mut dot = 0.0f32;
                    for (a, b) in qh.iter().zip(key) {
                        dot += a * b;
                    }
                    total += w * dot.max(0.0);
                }
                (total, s)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ids: Vec<usize> = scored.iter().take(k).map(|&(_, s)| s).collect();
        ids.sort_unstable();
        ids
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn tiled_selection_equals_scoring_and_sorting_everything() {
        let (heads, dim, k, entries) = (3, 16, 20, 700);
        let keys = pseudo_random(entries * dim, 1);
        let qs = pseudo_random(40 * heads * dim, 2);
        let ws = pseudo_random(40 * heads, 3);
        // Visible counts below, at and above k, and ragged across blocks.
        let queries: Vec<IndexQuery<'_>> = (0..40)
            .map(|i| IndexQuery {
                q: &qs[i * heads * dim..(i + 1) * heads * dim],
                weights: &ws[i * heads..(i + 1) * heads],
                visible: [5, 20, 21, 64, 65, 129, 700][i % 7] - i % 3,
            })
            .collect();
        let got = select(&queries, &keys, dim, k);
        for (q, ids) in queries.iter().zip(&got) {
            assert_eq!(ids, &select_by_sorting(q, &keys, dim, k));
            assert_eq!(ids.len(), q.visible.min(k));
        }
    }

    #[test]
    fn ties_go_to_the_lower_id() {
        // Every key is identical, so every score ties.
        let dim = 4;
        let keys = vec![0.25f32; 300 * dim];
        let q = [1.0f32; 4];
        let w = [1.0f32];
        let query = IndexQuery {
            q: &q,
            weights: &w,
            visible: 300,
        };
        let got = select(&[query], &keys, dim, 7);
        assert_eq!(got[0], (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_negative_dot_counts_as_zero() {
        // relu: key 0 has a large negative dot, key 1 a small positive one.
        let dim = 2;
        let keys = [-5.0f32, -5.0, 0.1, 0.0, 0.0, 0.0];
        let q = [1.0f32, 1.0];
        let w = [1.0f32];
        let query = IndexQuery {
            q: &q,
            weights: &w,
            visible: 3,
        };
        // k = 1 of 3: key 1 (0.1) beats keys 0 and 2 (both relu 0).
        assert_eq!(select(&[query], &keys, dim, 1)[0], vec![1]);
    }
}
