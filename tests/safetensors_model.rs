//! The HF safetensors path: SmolLM2's GGUF converted to an HF-style
//! directory (f32 safetensors with HF names and the llama Q/K rows
//! un-permuted, tokenizer.json, config.json, tokenizer_config.json) must load
//! through the safetensors loader and compute what the GGUF path computes on
//! the same (dequantized) weights.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use specbatch::backend::cpu::dense::CpuDenseExecutor;
use specbatch::backend::executor::{Executor, ForwardBatch, SeqChunk};
use specbatch::engine::sampler::argmax;
use specbatch::model::gguf::GgufFile;
use specbatch::model::load::{CheckpointFormat, load_model};
use specbatch::model::quant::{QType, dequantize_row};
use specbatch::model::tensor::{Storage, Tensor};
use specbatch::text::GgufVocab;

fn dequantized(t: &Tensor) -> Vec<f32> {
    let mut buf = vec![0f32; t.rows * t.cols];
    for r in 0..t.rows {
        dequantize_row(
            t.qtype,
            t.row_bytes(r),
            &mut buf[r * t.cols..(r + 1) * t.cols],
        );
    }
    buf
}

fn f32_tensor(t: &Tensor) -> Tensor {
    let bytes: Vec<u8> = dequantized(t)
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    Tensor::new(
        t.name.clone(),
        QType::F32,
        t.rows,
        t.cols,
        Storage::Owned(Arc::new(bytes)),
        0,
    )
    .unwrap()
}

/// llama.cpp's converter permutes each head's rows so that interleaved RoPE
/// works; HF checkpoints keep the rotate-half order. Undo the permutation.
fn unpermute(w: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    let hd = w.len() / cols / n_heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let src = (h * hd + 2 * i + j) * cols;
                let dst = (h * hd + j * hd / 2 + i) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}

fn convert(gguf_path: &str, dir: &Path) {
    let f = GgufFile::open(Path::new(gguf_path)).unwrap();
    let layers = f.get_u32("llama.block_count").unwrap() as usize;
    let heads = f.get_u32("llama.attention.head_count").unwrap() as usize;
    let kv_heads = f.get_u32("llama.attention.head_count_kv").unwrap() as usize;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut put = |name: String, t: &Tensor, data: Vec<f32>| {
        let shape = if t.rows == 1 {
            vec![t.cols]
        } else {
            vec![t.rows, t.cols]
        };
        tensors.push((
            name,
            shape,
            data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    };
    let names: HashMap<&str, &str> = [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ]
    .into();
    let t = f.tensor("token_embd.weight").unwrap();
    put("model.embed_tokens.weight".into(), &t, dequantized(&t));
    let t = f.tensor("output_norm.weight").unwrap();
    put("model.norm.weight".into(), &t, dequantized(&t));
    for i in 0..layers {
        for (g, h) in &names {
            let t = f.tensor(&format!("blk.{i}.{g}")).unwrap();
            let mut w = dequantized(&t);
            if *g == "attn_q.weight" {
                w = unpermute(&w, heads, t.cols);
            } else if *g == "attn_k.weight" {
                w = unpermute(&w, kv_heads, t.cols);
            }
            put(format!("model.layers.{i}.{h}"), &t, w);
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let vocab = GgufVocab {
        model: f.get_str("tokenizer.ggml.model").unwrap().into(),
        pre: f.get_str("tokenizer.ggml.pre").unwrap().into(),
        tokens: f
            .get_string_array("tokenizer.ggml.tokens")
            .unwrap()
            .to_vec(),
        merges: f
            .get_string_array("tokenizer.ggml.merges")
            .unwrap()
            .to_vec(),
        token_types: f
            .get_opt_i32_array("tokenizer.ggml.token_type")
            .unwrap()
            .unwrap()
            .to_vec(),
    };
    vocab
        .build()
        .unwrap()
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let config = serde_json::json!({
        "model_type": "llama",
        "hidden_size": f.get_u32("llama.embedding_length").unwrap(),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": f.get_u32("llama.feed_forward_length").unwrap(),
        "vocab_size": vocab.tokens.len(),
        "max_position_embeddings": f.get_u32("llama.context_length").unwrap(),
        "rope_theta": f.get_f32("llama.rope.freq_base").unwrap(),
        "rms_norm_eps": f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
        "tie_word_embeddings": true,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tc = serde_json::json!({
        "chat_template": f.get_str("tokenizer.chat_template").unwrap(),
        "eos_token": "<|im_end|>",
        "bos_token": "<|im_start|>",
        "add_bos_token": false,
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
}

#[test]
fn an_hf_directory_computes_what_the_gguf_computes() {
    let gguf = common::model_path(common::SMOLLM2);
    let dir = tempfile::tempdir().unwrap();
    convert(&gguf, dir.path());

    let hf = load_model(dir.path().to_str().unwrap()).unwrap();
    let gg = load_model(&gguf).unwrap();
    assert_eq!(hf.format, CheckpointFormat::Safetensors);
    assert_eq!(
        hf.weights.as_dense().unwrap().config.n_layers,
        gg.weights.as_dense().unwrap().config.n_layers
    );
    assert_eq!(hf.tokenizer.eos_ids, vec![2]);
    assert_eq!(
        hf.chat.as_ref().unwrap().default_system(),
        gg.chat.as_ref().unwrap().default_system()
    );

    let text = "<|im_start|>user\nName three rivers in Europe.<|im_end|>\n<|im_start|>assistant\n";
    let ids = hf.tokenizer.encode(text).unwrap();
    assert_eq!(
        ids,
        gg.tokenizer.encode(text).unwrap(),
        "tokenizer.json round trip"
    );

    // The GGUF path on the same f32 weights (interleaved RoPE on permuted rows).
    let mut w = gg.weights.into_dense().expect("dense model");
    w.embed = f32_tensor(&w.embed);
    w.head = f32_tensor(&w.head);
    for l in w.layers.iter_mut() {
        for t in [
            &mut l.wq,
            &mut l.wk,
            &mut l.wv,
            &mut l.wo,
            &mut l.w_gate,
            &mut l.w_up,
            &mut l.w_down,
        ] {
            *t = f32_tensor(t);
        }
    }
    let batch = ForwardBatch {
        seqs: vec![SeqChunk {
            tokens: ids.clone(),
            start_pos: 0,
            seq_id: 0,
            block_table: (0..ids.len().div_ceil(16) as u32).collect(),
            logits_for: 1,
        }],
    };
    let a = CpuDenseExecutor::new(hf.weights.into_dense().expect("dense model"), 16 << 20, 16)
        .forward(&batch)
        .unwrap();
    let b = CpuDenseExecutor::new(w, 16 << 20, 16)
        .forward(&batch)
        .unwrap();
    let max = a[0]
        .iter()
        .zip(&b[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-2, "max |diff| {max}");
    assert_eq!(argmax(&a[0]), argmax(&b[0]));
}
