//! argon2's working memory, for the hashes that the `argon2` crate verifies (more than one lane, unusual salt
//! sizes; the common case runs in libsodium, see `password/mod.rs`).
//!
//! A login is a fresh process, so argon2's 19 MiB are new memory that the kernel must fault in and zero page
//! by page (~4,900 faults at 4 KiB): that alone makes a first verification ~1.5x a warm one. Mapping the
//! blocks with transparent huge pages turns those faults into about ten. Where the mapping fails, a plain
//! heap allocation does the same job, slower.

use argon2::Block;

use crate::sys::MappedBlocks;

pub enum BlockMemory {
    Mapped(MappedBlocks),
    Heap(Vec<Block>),
}

impl BlockMemory {
    pub fn new(count: usize) -> BlockMemory {
        match MappedBlocks::new(count) {
            Some(mapped) => BlockMemory::Mapped(mapped),
            None => BlockMemory::Heap(vec![Block::default(); count]),
        }
    }

    pub fn blocks(&mut self) -> &mut [Block] {
        match self {
            BlockMemory::Mapped(m) => m.as_mut_slice(),
            BlockMemory::Heap(v) => v.as_mut_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_has_the_requested_number_of_zeroed_blocks() {
        let mut m = BlockMemory::new(3000);
        let blocks = m.blocks();
        assert_eq!(blocks.len(), 3000);
        let zero = Block::default();
        assert!(blocks.iter().all(|b| b.as_ref() == zero.as_ref()));
        blocks[2999] = zero;
    }
}
