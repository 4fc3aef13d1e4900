//! In-memory engine (being written).

/// `MemStore` (being written).
#[derive(Debug, Clone, Default)]
pub struct MemStore;
