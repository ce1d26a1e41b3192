//! The `specbatch` command line: run, plan, finalize, validate, inspect, bench,
//! synth-model.
//!
//! Exit codes: 0 when a job (or shard) finished (row-level errors included);
//! 2 for a bad spec, model, input schema, missing devices or plan (not
//! worth retrying); 1 for anything else (worth retrying).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use specbatch::backend::device::Device;
use specbatch::bench::{device_executor, run_point};
use specbatch::error::JobError;
use specbatch::model::inspect::describe;
use specbatch::model::load::load_model;
use specbatch::model::synth::{self, SynthShape};
use specbatch::pipeline::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "specbatch",
    version,
    about = "Offline batch LLM inference: YAML job spec, Parquet in, Parquet out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job, or one shard of it (resumes a previous attempt at the same output).
    Run {
        /// The YAML job spec.
        job: String,
        /// Write output here instead of the spec's `output.path`.
        #[arg(long)]
        output: Option<String>,
        /// Shard to run [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0].
        #[arg(long)]
        shard: Option<u32>,
        /// Shards of the plan, when this run makes it [default: 1]; must match an existing plan.
        #[arg(long)]
        shards: Option<u32>,
    },
    /// Plan a job without running the model: store `_plan/plan.json` and print its statistics.
    Plan {
        job: String,
        #[arg(long)]
        output: Option<String>,
        /// Shards to split the job into [default: 1]; must match an existing plan.
        #[arg(long)]
        shards: Option<u32>,
    },
    /// Write manifest.json and _SUCCESS once every shard of the output is done.
    Finalize {
        /// The job's output directory.
        output: String,
    },
    /// Check a job's spec, its inputs' schema and its model without running.
    Validate { job: String },
    /// Fit the job's drafter confidences on held-out rows and write the file
    /// `speculation.calibration` names (nothing goes to the job's output).
    Calibrate {
        job: String,
        /// The calibration file to write.
        #[arg(long)]
        out: String,
        /// How many of the job's first input rows to run.
        #[arg(long, default_value_t = 32)]
        rows: usize,
    },
    /// Describe a model: architecture, parameters, tensor formats, tokenizer, chat template.
    Inspect { model: String },
    /// Write a random-weight GGUF model with a real model's tensor names,
    /// shapes, formats and metadata (for machines the real files cannot reach).
    SynthModel {
        /// Which real model's shape to copy.
        #[arg(long, value_enum)]
        shape: SynthShape,
        /// The GGUF file to write.
        #[arg(long)]
        out: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write only the first L layers (every layer keeps its real shape)
        /// [default: the real layer count].
        #[arg(long)]
        layers: Option<usize>,
    },
    /// Measure generation throughput (the llama-batched-bench workload).
    Bench {
        /// GGUF file or HF-style directory.
        #[arg(long)]
        model: String,
        /// Concurrent sequences, comma-separated.
        #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
        concurrency: Vec<usize>,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 64)]
        gen_tokens: usize,
        /// Compute threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Where the model runs: `cpu` or `cuda:N`.
        #[arg(long, default_value = "cpu", value_parser = Device::parse)]
        device: Device,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            job,
            output,
            shard,
            shards,
        } => {
            let opts = RunOptions {
                output,
                shard,
                shards,
                ..RunOptions::default()
            };
            pipeline::run_job(&job, &opts).map(|summary| println!("{summary}"))
        }
        Command::Plan {
            job,
            output,
            shards,
        } => {
            let opts = RunOptions {
                output,
                shards,
                ..RunOptions::default()
            };
            pipeline::plan_job(&job, &opts).map(|report| println!("{report}"))
        }
        Command::Finalize { output } => {
            pipeline::finalize_output(std::path::Path::new(&output)).map(|r| println!("{r}"))
        }
        Command::Validate { job } => {
            pipeline::validate_job(&job).map(|report| println!("{report}"))
        }
        Command::Calibrate { job, out, rows } => {
            pipeline::calibrate_job(&job, rows, std::path::Path::new(&out))
                .map(|report| print!("{report}"))
        }
        Command::Inspect { model } => load_model(&model)
            .map(|m| print!("{}", describe(&m)))
            .map_err(JobError::from),
        Command::Bench {
            model,
            concurrency,
            prompt_tokens,
            gen_tokens,
            threads,
            device,
        } => {
            return bench(
                &model,
                &concurrency,
                prompt_tokens,
                gen_tokens,
                threads,
                device,
            );
        }
        Command::SynthModel {
            shape,
            out,
            seed,
            layers,
        } => return synth_model(shape, &out, seed, layers),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn bench(
    model: &str,
    concurrency: &[usize],
    prompt_tokens: usize,
    gen_tokens: usize,
    threads: usize,
    device: Device,
) -> ExitCode {
    let run = || -> anyhow::Result<()> {
        anyhow::ensure!(gen_tokens >= 2, "--gen-tokens must be at least 2");
        pipeline::init_threads(threads);
        let m = load_model(model)?;
        let max_conc = concurrency.iter().copied().max().unwrap_or(1);
        let block = 16;
        let mut exec = device_executor(
            device,
            m.weights,
            max_conc,
            prompt_tokens,
            gen_tokens,
            block,
        )?;
        println!("model,concurrency,prompt_tokens,gen_tokens,prefill_tok_per_s,gen_tok_per_s");
        for &n in concurrency {
            let p = run_point(&mut exec, n, prompt_tokens, gen_tokens, 512, block)
                .with_context(|| format!("bench at concurrency {n}"))?;
            println!(
                "{},{},{},{},{:.2},{:.2}",
                m.name, n, p.prompt_tokens, p.gen_tokens, p.prefill_tok_per_s, p.gen_tok_per_s
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn synth_model(shape: SynthShape, out: &str, seed: u64, layers: Option<usize>) -> ExitCode {
    let start = std::time::Instant::now();
    match synth::write_model(shape, seed, layers, std::path::Path::new(out)) {
        Ok(s) => {
            println!(
                "wrote {out}: {} shape, {} layers, {} tensors, {} tensor bytes, seed {seed}, {:.1} s",
                shape.name(),
                s.layers,
                s.tensors,
                s.tensor_bytes,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
