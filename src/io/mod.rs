//! Parquet input and output: streaming reader, fixed-schema writer, the
//! create-if-absent commit protocol, the manifest and resume.
//!
//! Flow: [`validate_inputs`] checks footers and column types up front and
//! returns an [`InputPlan`]; [`InputPlan::stream`] yields `Vec<InputRow>` per
//! record batch. [`OutputState::open`] prepares or resumes the output
//! directory and yields the committed [`RowSet`] to skip; its
//! [`PartWriter`] turns [`RowResult`]s into committed part files;
//! [`finalize`] writes `manifest.json` and `_SUCCESS`.

mod arrow_values;
mod commit;
mod create;
mod error;
mod input_paths;
mod input_plan;
mod job_records;
mod layout;
mod manifest;
mod messages;
mod output_dir;
mod output_schema;
mod overrides;
mod part_writer;
mod reader;
pub mod row;
mod row_set;
#[cfg(test)]
mod test_util;

pub use commit::{CommitRecord, FileRows, Totals};
pub use error::IoError;
pub use input_paths::resolve_paths;
pub use input_plan::{InputFile, InputPlan, validate_inputs};
pub use job_records::{ShardDone, plan_path, read_done, read_plan, store_plan, write_done};
pub use manifest::{Counts, Manifest, ShardLine, SpeculationSummary, finalize};
pub use output_dir::{OutputConfig, OutputState};
pub use output_schema::{FIXED_COLUMNS, STATUS_ERROR, STATUS_OK, build_batch, output_schema};
pub use part_writer::{OutputSummary, PartWriter, WriterConfig};
pub use reader::InputStream;
pub use row::{InputRow, RowResult};
pub use row_set::RowSet;
