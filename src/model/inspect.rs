//! A human-readable description of a loaded model, for `specbatch inspect`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::dense::DenseWeights;
use crate::model::dsv4::config::LayerKind;
use crate::model::dsv4::state::KvFootprint;
use crate::model::dsv4::weights::Dsv4Weights;
use crate::model::load::{LoadedModel, ModelWeights};

/// Architecture, parameters, tensor formats, tokenizer and chat template.
pub fn describe(m: &LoadedModel) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "model          {}", m.name);
    let _ = writeln!(s, "path           {} ({:?})", m.path, m.format);
    let _ = writeln!(s, "architecture   {}", m.weights.arch_name());
    match &m.weights {
        ModelWeights::Dense(w) => describe_dense(&mut s, w),
        ModelWeights::DeepseekV4(w) => describe_dsv4(&mut s, w),
    }
    let t = &m.tokenizer;
    let _ = writeln!(
        s,
        "tokenizer      vocab {}; eos {:?}; bos {:?} (added: {})",
        t.vocab_size(),
        t.eos_ids,
        t.bos_id,
        t.add_bos
    );
    match &m.chat {
        Some(chat) => {
            let _ = writeln!(
                s,
                "chat template  {}; default system prompt: {}",
                chat.family(),
                chat.default_system().unwrap_or("(none)")
            );
        }
        None => {
            let _ = writeln!(s, "chat template  none (chat rows will be error rows)");
        }
    }
    s
}

fn describe_dense(s: &mut String, w: &DenseWeights) {
    let c = &w.config;
    let _ = writeln!(
        s,
        "parameters     {} ({:.1} M)",
        w.parameter_count(),
        w.parameter_count() as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "shape          {} layers, d_model {}, {} heads / {} KV heads (head dim {}), FFN {}",
        c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim
    );
    let _ = writeln!(
        s,
        "context        {} tokens; RoPE base {} over {} dims ({:?}); RMSNorm eps {:e}",
        c.context_length, c.rope_base, c.rope_dims, c.rope_style, c.rms_eps
    );
    let _ = writeln!(
        s,
        "attention      QKV bias {}; output head {}",
        if c.qkv_bias { "yes" } else { "no" },
        if c.tied_head {
            "tied to the embedding"
        } else {
            "untied"
        }
    );
    let mut formats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in w.matrices() {
        let e = formats.entry(format!("{:?}", t.qtype)).or_default();
        e.0 += 1;
        e.1 += t.bytes().len();
    }
    let total: usize = formats.values().map(|v| v.1).sum();
    let _ = writeln!(
        s,
        "weights        {:.1} MB in matrices (kept in stored format)",
        total as f64 / 1e6
    );
    for (name, (count, bytes)) in &formats {
        let _ = writeln!(
            s,
            "  {name:<6} {count:>4} matrices  {:>9.1} MB",
            *bytes as f64 / 1e6
        );
    }
}

fn describe_dsv4(s: &mut String, w: &Dsv4Weights) {
    let c = &w.config;
    let kinds: Vec<&str> = (0..c.n_layers)
        .map(|i| match c.kind(i) {
            LayerKind::Sliding => "S",
            LayerKind::Csa => "C",
            LayerKind::Hca => "H",
        })
        .collect();
    let _ = writeln!(
        s,
        "shape          {} layers [{}], hidden {}, {} heads × {} (RoPE {}), q rank {}, o {}×{}",
        c.n_layers,
        kinds.join(""),
        c.hidden,
        c.n_heads,
        c.head_dim,
        c.rope_dim,
        c.q_lora_rank,
        c.o_groups,
        c.o_lora_rank
    );
    let _ = writeln!(
        s,
        "moe            {} routed experts ({:?}) top-{} × {}, {} shared, inter {}, {} hash layers",
        c.n_routed_experts,
        c.expert_dtype,
        c.n_active_experts,
        c.route_scale,
        c.n_shared_experts,
        c.moe_inter,
        c.n_hash_layers
    );
    let _ = writeln!(
        s,
        "attention      window {}, ratios {:?}, indexer {}×{} top-{}, mHC {} streams",
        c.window, c.compress_ratios, c.index_heads, c.index_head_dim, c.index_topk, c.hc_mult
    );
    let fp = KvFootprint::new(c);
    let per: Vec<String> = fp
        .per_token_by_kind()
        .iter()
        .map(|(k, b)| format!("{k:?} {b:.1}"))
        .collect();
    let _ = writeln!(
        s,
        "kv state       {} B fixed per sequence + B/token by kind: {}; at 1M tokens {:.2} GB",
        fp.fixed,
        per.join(", "),
        fp.bytes(1 << 20) as f64 / 1e9
    );
    let mut formats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for m in w.matrices() {
        let e = formats.entry(m.format.name().to_string()).or_default();
        e.0 += 1;
        e.1 += m.bytes_resident();
    }
    for (name, (count, bytes)) in &formats {
        let _ = writeln!(
            s,
            "  {name:<6} {count:>5} matrices  {:>9.1} MB",
            *bytes as f64 / 1e6
        );
    }
}
