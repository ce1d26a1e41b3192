pub mod attention;
pub mod dense;
pub mod kv_arena;
pub mod matmul;
pub mod ops;
