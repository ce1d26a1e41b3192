//! File names inside an output directory (ARCHITECTURE §6).
//!
//! ```text
//! <root>/_job.json                                  job identity: spec hash, input files
//! <root>/data/shard=NNNNN/part-NNNNN-SSSS.parquet   one per commit
//! <root>/_commits/shard=NNNNN/seq-SSSS.json         one per committed part
//! <root>/_commits/shard=NNNNN/_DONE.json            the shard is complete
//! <root>/_plan/plan.json                            the job's plan (immutable)
//! <root>/_tmp/shard=NNNNN/                          temp files, never *.parquet
//! <root>/manifest.json, <root>/_SUCCESS
//! ```
//! Names are deterministic in (shard, seq), so a retried or duplicate attempt
//! aims at the same name and create-if-absent decides who wins. Temp files
//! live outside `data/` so readers globbing `data/**/*.parquet` never see one.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn job_file(&self) -> PathBuf {
        self.root.join("_job.json")
    }

    pub(crate) fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    pub(crate) fn success(&self) -> PathBuf {
        self.root.join("_SUCCESS")
    }

    pub(crate) fn plan_file(&self) -> PathBuf {
        self.root.join("_plan").join("plan.json")
    }

    /// Written once every row of the shard is committed.
    pub(crate) fn done_file(&self, shard: u32) -> PathBuf {
        self.commits_dir(shard).join("_DONE.json")
    }

    pub(crate) fn tmp_root(&self) -> PathBuf {
        self.root.join("_tmp")
    }

    /// Per shard, so cleaning one shard's leftovers never touches another
    /// shard's in-flight temp files.
    pub(crate) fn tmp_dir(&self, shard: u32) -> PathBuf {
        self.tmp_root().join(format!("shard={shard:05}"))
    }

    pub(crate) fn data_dir(&self, shard: u32) -> PathBuf {
        self.root.join("data").join(format!("shard={shard:05}"))
    }

    pub(crate) fn commits_dir(&self, shard: u32) -> PathBuf {
        self.root.join("_commits").join(format!("shard={shard:05}"))
    }

    pub(crate) fn part_name(shard: u32, seq: u32) -> String {
        format!("part-{shard:05}-{seq:04}.parquet")
    }

    /// The part path relative to the root, as listed in records and the manifest.
    pub(crate) fn part_rel(shard: u32, seq: u32) -> String {
        format!("data/shard={shard:05}/{}", Self::part_name(shard, seq))
    }

    pub(crate) fn part_path(&self, shard: u32, seq: u32) -> PathBuf {
        self.data_dir(shard).join(Self::part_name(shard, seq))
    }

    pub(crate) fn record_path(&self, shard: u32, seq: u32) -> PathBuf {
        self.commits_dir(shard).join(format!("seq-{seq:04}.json"))
    }

    /// The seq of a part file name of `shard`, if it is one.
    pub(crate) fn part_seq(shard: u32, name: &str) -> Option<u32> {
        let prefix = format!("part-{shard:05}-");
        parse_seq(name.strip_prefix(&prefix)?.strip_suffix(".parquet")?)
    }

    /// The seq of a commit record file name, if it is one.
    pub(crate) fn record_seq(name: &str) -> Option<u32> {
        parse_seq(name.strip_prefix("seq-")?.strip_suffix(".json")?)
    }
}

fn parse_seq(digits: &str) -> Option<u32> {
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let l = Layout::new("/out");
        assert_eq!(
            l.part_path(0, 3),
            PathBuf::from("/out/data/shard=00000/part-00000-0003.parquet")
        );
        assert_eq!(
            Layout::part_rel(2, 12345),
            "data/shard=00002/part-00002-12345.parquet"
        );
        assert_eq!(
            l.record_path(0, 3),
            PathBuf::from("/out/_commits/shard=00000/seq-0003.json")
        );
        assert_eq!(Layout::part_seq(0, "part-00000-0003.parquet"), Some(3));
        assert_eq!(Layout::part_seq(0, "part-00000-12345.parquet"), Some(12345));
        assert_eq!(Layout::part_seq(1, "part-00000-0003.parquet"), None);
        assert_eq!(Layout::part_seq(0, "part-00000-0003.parquet.tmp"), None);
        assert_eq!(Layout::part_seq(0, "part-00000-+003.parquet"), None);
        assert_eq!(Layout::record_seq("seq-0007.json"), Some(7));
        assert_eq!(Layout::record_seq("seq-7.json"), None);
    }
}
