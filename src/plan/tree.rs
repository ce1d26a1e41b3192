//! The prefix tree over a job's prompts and the prefix groups cut from it.
//!
//! Nodes are full KV blocks identified by chain hash ([`crate::kv::chain_hashes`]),
//! so a node stands for one exact token prefix. A row hangs at the deepest
//! block it can share: another row can attach to at most `(len - 1) / block`
//! of its blocks, because the engine always computes a row's last prompt
//! token itself.
//!
//! Groups come from a top-down cut: a subtree whose cost (unique prefill plus
//! weighted decode) fits the cap is one group; a larger one is split into its
//! children, and consecutive single rows left over are packed into groups up
//! to the cap. So every shared prefix worth keeping together stays inside one
//! group, and groups are small enough to balance shards. The order is
//! depth-first with longer subtrees first: rows that share a prefix run back
//! to back, and siblings come in descending length, which buckets rows of
//! similar length into the same batches.

use std::collections::HashMap;

use crate::kv::BlockHash;

/// Decode tokens cost this many prefill tokens (one decode token is a whole
/// forward step's share of weight reads; prefill tokens amortise them).
pub const DECODE_WEIGHT: f64 = 8.0;

/// What the planner knows about one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub file_index: u32,
    pub input_row: u64,
    /// 0 for a row that fails before the engine (it costs nothing).
    pub prompt_len: usize,
    pub max_new: usize,
    /// Chain hashes of the prompt's full blocks.
    pub hashes: Vec<BlockHash>,
}

impl PlanRow {
    fn shareable(&self, block_size: usize) -> usize {
        (self.prompt_len.saturating_sub(1) / block_size).min(self.hashes.len())
    }

    /// Cost of running the row alone, in prefill-token equivalents.
    pub fn cost_alone(&self) -> f64 {
        self.prompt_len as f64 + DECODE_WEIGHT * self.max_new as f64
    }
}

#[derive(Debug, Default)]
struct Node {
    depth: usize,
    children: Vec<usize>,
    /// Rows whose shareable prefix ends here.
    rows: Vec<usize>,
    /// Unique prefill + decode cost of the subtree, this node's block included.
    cost: f64,
    /// Longest row length in the subtree, for ordering.
    longest: usize,
}

/// A step of the depth-first walk: a subtree, or the rows ending at a node
/// (after its children).
enum Visit {
    Node(usize),
    Rows(usize),
}

/// A set of rows planned to run together behind a shared prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Indices into the planner's rows, in run order.
    pub rows: Vec<usize>,
    /// Full blocks every row of the group shares (0 for one row).
    pub prefix_blocks: usize,
    /// Cost of the group with its prefix computed once.
    pub cost: f64,
}

/// The tree over all rows.
#[derive(Debug)]
pub struct PrefixTree<'r> {
    rows: &'r [PlanRow],
    block_size: usize,
    nodes: Vec<Node>,
}

impl<'r> PrefixTree<'r> {
    pub fn build(rows: &'r [PlanRow], block_size: usize) -> Self {
        let mut nodes = vec![Node::default()];
        let mut by_hash: HashMap<BlockHash, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let mut at = 0;
            for (d, h) in row.hashes[..row.shareable(block_size)].iter().enumerate() {
                at = *by_hash.entry(*h).or_insert_with(|| {
                    nodes.push(Node {
                        depth: d + 1,
                        ..Node::default()
                    });
                    let child = nodes.len() - 1;
                    nodes[at].children.push(child);
                    child
                });
            }
            nodes[at].rows.push(i);
        }
        let mut tree = PrefixTree {
            rows,
            block_size,
            nodes,
        };
        tree.sum_costs(0);
        tree
    }

    /// Fills `cost` and `longest` bottom-up and sorts children and rows so
    /// that the longest come first (ties keep input order: deterministic).
    fn sum_costs(&mut self, v: usize) {
        // An explicit stack: prompts of a million tokens are deep trees.
        let mut order = vec![v];
        let mut i = 0;
        while i < order.len() {
            let n = order[i];
            order.extend(self.nodes[n].children.iter().copied());
            i += 1;
        }
        for &n in order.iter().rev() {
            let bs = self.block_size;
            let own = if n == 0 { 0.0 } else { bs as f64 };
            let depth_tokens = self.nodes[n].depth * bs;
            let rows = self.rows;
            let mut row_cost = 0.0;
            let mut longest = 0;
            for &r in &self.nodes[n].rows {
                let row = &rows[r];
                row_cost += row.prompt_len.saturating_sub(depth_tokens) as f64
                    + DECODE_WEIGHT * row.max_new as f64;
                longest = longest.max(row.prompt_len + row.max_new);
            }
            let mut child_cost = 0.0;
            for &c in &self.nodes[n].children {
                child_cost += self.nodes[c].cost;
                longest = longest.max(self.nodes[c].longest);
            }
            let node = &mut self.nodes[n];
            node.cost = own + row_cost + child_cost;
            node.longest = longest;
            let mut rows_sorted = std::mem::take(&mut node.rows);
            rows_sorted.sort_by_key(|&r| std::cmp::Reverse(rows[r].prompt_len + rows[r].max_new));
            let mut children = std::mem::take(&mut self.nodes[n].children);
            children.sort_by_key(|&c| std::cmp::Reverse(self.nodes[c].longest));
            let node = &mut self.nodes[n];
            node.rows = rows_sorted;
            node.children = children;
        }
    }

    /// Prompt tokens computed with every shared block computed once.
    pub fn unique_prefill_tokens(&self) -> u64 {
        let blocks = (self.nodes.len() - 1) * self.block_size;
        let tails: usize = self
            .nodes
            .iter()
            .flat_map(|n| n.rows.iter().map(move |&r| (n.depth, r)))
            .map(|(d, r)| self.rows[r].prompt_len.saturating_sub(d * self.block_size))
            .sum();
        (blocks + tails) as u64
    }

    /// Total cost with reuse.
    pub fn total_cost(&self) -> f64 {
        self.nodes[0].cost
    }

    /// Rows of `v`'s subtree in run order: children (longest first), then
    /// the rows that end at a node, which are shorter.
    fn subtree_rows(&self, v: usize, out: &mut Vec<usize>) {
        let mut stack = vec![Visit::Node(v)];
        while let Some(item) = stack.pop() {
            match item {
                Visit::Rows(n) => out.extend(&self.nodes[n].rows),
                Visit::Node(n) => {
                    stack.push(Visit::Rows(n));
                    stack.extend(self.nodes[n].children.iter().rev().map(|&c| Visit::Node(c)));
                }
            }
        }
    }

    /// Cuts the tree into groups of cost at most `cap` (a single row may
    /// exceed it), in run order.
    pub fn groups(&self, cap: f64) -> Vec<Group> {
        let mut out = Vec::new();
        let mut stack = vec![Visit::Node(0)];
        let mut loose: Vec<usize> = Vec::new();
        while let Some(item) = stack.pop() {
            let n = match item {
                Visit::Rows(n) => {
                    loose.extend(&self.nodes[n].rows);
                    continue;
                }
                Visit::Node(n) => n,
            };
            let node = &self.nodes[n];
            if node.cost <= cap || (node.children.is_empty() && node.rows.len() == 1) {
                let mut rows = Vec::new();
                self.subtree_rows(n, &mut rows);
                if rows.len() == 1 {
                    loose.extend(rows);
                } else {
                    self.flush_loose(&mut loose, cap, &mut out);
                    // The subtree's cost plus its ancestors' blocks, once.
                    let path = node.depth.saturating_sub(1) * self.block_size;
                    out.push(self.group(rows, Some(node.cost + path as f64)));
                }
                continue;
            }
            stack.push(Visit::Rows(n));
            stack.extend(node.children.iter().rev().map(|&c| Visit::Node(c)));
        }
        self.flush_loose(&mut loose, cap, &mut out);
        out
    }

    /// Packs consecutive single rows into groups up to `cap`.
    fn flush_loose(&self, loose: &mut Vec<usize>, cap: f64, out: &mut Vec<Group>) {
        let mut bin: Vec<usize> = Vec::new();
        let mut bin_cost = 0.0;
        for r in loose.drain(..) {
            let c = self.rows[r].cost_alone();
            if !bin.is_empty() && bin_cost + c > cap {
                out.push(self.group(std::mem::take(&mut bin), None));
                bin_cost = 0.0;
            }
            bin.push(r);
            bin_cost += c;
        }
        if !bin.is_empty() {
            out.push(self.group(bin, None));
        }
    }

    /// A group of `rows`; `cost` when known from the tree, else estimated
    /// with only the common prefix shared.
    fn group(&self, rows: Vec<usize>, cost: Option<f64>) -> Group {
        let bs = self.block_size;
        let prefix_blocks = if rows.len() < 2 {
            0
        } else {
            let first = &self.rows[rows[0]];
            rows[1..].iter().fold(first.shareable(bs), |lcp, &r| {
                let other = &self.rows[r];
                first.hashes[..lcp]
                    .iter()
                    .zip(&other.hashes[..other.shareable(bs)])
                    .take_while(|(a, b)| a == b)
                    .count()
            })
        };
        let cost = cost.unwrap_or_else(|| {
            rows.iter()
                .map(|&r| {
                    let row = &self.rows[r];
                    row.cost_alone() - (prefix_blocks * bs).min(row.prompt_len) as f64
                })
                .sum::<f64>()
                + (prefix_blocks * bs) as f64
        });
        Group {
            rows,
            prefix_blocks,
            cost,
        }
    }
}
