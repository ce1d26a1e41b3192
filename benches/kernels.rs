//! Times `backend::cpu::matmul` on realistic weight shapes at decode batch
//! sizes and prints weight-streaming GB/s and GFLOP/s.
//!
//! Each shape is replicated into enough copies to exceed the last-level
//! cache, and calls cycle through the copies, so weights stream from DRAM
//! as they do in a real forward pass. Run: `cargo bench --bench kernels`
//! (threads: RAYON_NUM_THREADS, default all cores), once per kernel family
//! this CPU runs (the engine uses the first it detects). Arguments, if any,
//! select formats by name, e.g. `cargo bench --bench kernels -- Q4_1 Q4K`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use half::f16;
use specbatch::backend::cpu::{Isa, matmul_on};
use specbatch::model::quant::QType;
use specbatch::model::tensor::{Storage, Tensor};

/// Bytes of weights cycled through per shape (well above a 32 MiB L3).
const WORKING_SET: usize = 192 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random blocks with sane f16 scales (random scale bytes would give NaNs).
fn random_weights(qtype: QType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n = rows * qtype.row_bytes(cols);
    let mut bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    let scale = f16::from_f32(0.01).to_le_bytes();
    let bb = qtype.block_bytes();
    for blk in bytes.chunks_exact_mut(bb) {
        match qtype {
            QType::F32 => blk.copy_from_slice(&rng.unit().to_le_bytes()),
            QType::F16 => blk.copy_from_slice(&f16::from_f32(rng.unit()).to_le_bytes()),
            QType::BF16 => blk.copy_from_slice(&half::bf16::from_f32(rng.unit()).to_le_bytes()),
            QType::Q8_0 | QType::Q5_0 => blk[..2].copy_from_slice(&scale),
            QType::Q4_1 | QType::Q4K => {
                blk[..2].copy_from_slice(&scale);
                blk[2..4].copy_from_slice(&scale);
            }
            QType::Q6K => blk[208..].copy_from_slice(&scale),
        }
    }
    bytes
}

fn bench(isa: Isa, qtype: QType, rows: usize, cols: usize, ms: &[usize], rng: &mut Rng) {
    let one = rows * qtype.row_bytes(cols);
    let copies = WORKING_SET.div_ceil(one).max(2);
    let tensors: Vec<Tensor> = (0..copies)
        .map(|_| {
            let bytes = Arc::new(random_weights(qtype, rows, cols, rng));
            Tensor::new("bench", qtype, rows, cols, Storage::Owned(bytes), 0).expect("bench tensor")
        })
        .collect();
    for &m in ms {
        let x: Vec<f32> = (0..m * cols).map(|_| rng.unit()).collect();
        let mut out = vec![0.0f32; m * rows];
        // Warm up (page faults, thread pool, buffers), then time for at
        // least ~0.4 s and report the median call.
        for t in &tensors {
            matmul_on(isa, t, &x, m, &mut out);
        }
        let mut times = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400) || times.len() < 2 * copies {
            let t = &tensors[times.len() % copies];
            let t0 = Instant::now();
            matmul_on(isa, t, &x, m, &mut out);
            times.push(t0.elapsed());
        }
        times.sort();
        let med = times[times.len() / 2].as_secs_f64();
        let flops = 2.0 * (m * rows * cols) as f64;
        println!(
            "{:<7} {:<5} {:>6} x {:<5} m={:<3} {:>9.1} us  {:>6.1} GB/s  {:>7.1} GFLOP/s",
            format!("{isa:?}"),
            format!("{qtype:?}"),
            rows,
            cols,
            m,
            med * 1e6,
            one as f64 / med / 1e9,
            flops / med / 1e9
        );
    }
}

fn main() {
    println!(
        "kernels: {:?} (the engine's), {} threads, weights cycled over {} MiB",
        Isa::detect(),
        rayon::current_num_threads(),
        WORKING_SET >> 20
    );
    let mut rng = Rng(42);
    let ms = [1, 2, 4, 6, 8, 32];
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (qtype, rows, cols) in [
        (QType::Q4_1, 1536, 576),
        (QType::Q4_1, 576, 1536),
        (QType::Q8_0, 4864, 896),
        (QType::Q5_0, 4864, 896),
        (QType::Q4_1, 4864, 896),
        (QType::Q4K, 8960, 1536),
        (QType::Q6K, 1536, 8960),
        (QType::Q6K, 32768, 1536),
        (QType::F16, 2048, 2048),
        (QType::F32, 2048, 2048),
    ] {
        if !wanted.is_empty() && !wanted.iter().any(|w| *w == format!("{qtype:?}")) {
            continue;
        }
        for isa in Isa::available() {
            if isa != Isa::Scalar {
                bench(isa, qtype, rows, cols, &ms, &mut rng);
            }
        }
    }
}
