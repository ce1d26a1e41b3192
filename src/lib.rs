//! specbatch: offline batch LLM inference over long-context corpora.
//!
//! Data flows one way: [`job`] spec → [`io`] reader → [`text`] encoder →
//! [`plan`] (whole-job prefix groups and shards) → [`engine`] step loop (over a [`model`] on a [`backend`], with [`kv`]
//! bookkeeping) → [`io`] writer. Stages talk through bounded channels; row
//! identity (`id`, `input_file`, `input_row`) travels with every row.

pub mod backend;
pub mod bench;
pub mod cache;
pub mod engine;
pub mod error;
pub mod io;
pub mod job;
pub mod kv;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod spec;
pub mod text;
