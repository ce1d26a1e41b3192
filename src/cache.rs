//! Where specbatch keeps what it can recompute (measured step rates,
//! compiled GPU kernels): `$XDG_CACHE_HOME/specbatch`, else
//! `~/.cache/specbatch`, else the temp dir. Losing it costs time, never
//! correctness: every entry is keyed by everything it depends on.

use std::path::PathBuf;

/// The cache root.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("specbatch")
}
