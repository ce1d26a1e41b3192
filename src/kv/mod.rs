//! KV cache bookkeeping: block pool and memory budget (plain data).
