//! The memory cap of one task.
//!
//! wasmtime's `StoreLimits` refuses growth past a cap but does not say afterwards whether it
//! did, and the engine needs that to tell "the module ran out of its memory limit" (reported as
//! [`crate::ExecutorError::OutOfMemory`]) from any other trap.

use wasmtime::ResourceLimiter;

/// Caps every linear memory of a task at `limit` bytes and remembers refusals.
#[derive(Debug, Clone, Copy)]
pub struct MemoryCap {
    limit: Option<usize>,
    refused: bool,
}

impl MemoryCap {
    /// A cap of `bytes` per linear memory; 0 means no cap.
    pub fn new(bytes: u64) -> Self {
        let limit = (bytes > 0).then(|| usize::try_from(bytes).unwrap_or(usize::MAX));
        MemoryCap {
            limit,
            refused: false,
        }
    }

    /// Whether a growth (or an initial allocation) was refused because of the cap.
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        match self.limit {
            Some(limit) if desired > limit => {
                self.refused = true;
                // `memory.grow` returns -1, as on a machine out of memory; the module decides
                // what to do (most abort with a trap, which is reported as out of memory).
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_cap_is_refused_and_remembered() {
        let mut cap = MemoryCap::new(1 << 20);
        assert!(cap.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!cap.refused());
        assert!(
            !cap.memory_growing(1 << 20, (1 << 20) + 65536, None)
                .unwrap()
        );
        assert!(cap.refused());
    }

    #[test]
    fn zero_means_no_cap() {
        let mut cap = MemoryCap::new(0);
        assert!(cap.memory_growing(0, usize::MAX / 2, None).unwrap());
        assert!(!cap.refused());
    }
}
