//! A human-readable description of a loaded model, for `specbatch inspect`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::load::LoadedModel;

/// Architecture, parameters, tensor formats, tokenizer and chat template.
pub fn describe(m: &LoadedModel) -> String {
    let c = &m.weights.config;
    let mut s = String::new();
    let _ = writeln!(s, "model          {}", m.name);
    let _ = writeln!(s, "path           {} ({:?})", m.path, m.format);
    let _ = writeln!(s, "architecture   {}", c.arch.name());
    let _ = writeln!(
        s,
        "parameters     {} ({:.1} M)",
        m.weights.parameter_count(),
        m.weights.parameter_count() as f64 / 1e6
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
    for t in m.weights.matrices() {
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
