//! Bytes the allocator really hands out for a request of a given size:
//! what the weigher counts per allocation (see [`super::weight`]).

/// The reference count `bytes` allocates for a buffer once it is shared
/// (its first clone: a stored body or value handed to an answer).
pub const SHARED_COUNT: usize = 32;

/// Bytes the allocator hands out for a request of `size`: jemalloc's
/// size classes (8, then 16-byte steps up to 128 bytes, then four classes
/// per power of two, small and large alike).
pub fn allocated(size: usize) -> usize {
    match size {
        0 => 0,
        1..=8 => 8,
        9..=128 => size.next_multiple_of(16),
        _ => {
            let base = 1usize << (usize::BITS - 1 - (size - 1).leading_zeros());
            size.next_multiple_of(base / 4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_as_the_allocator_does() {
        for (asked, given) in [
            (0, 0),
            (1, 8),
            (9, 16),
            (40, 48),
            (64, 64),
            (65, 80),
            (100, 112),
            (128, 128),
            (129, 160),
            (1024, 1024),
            (1025, 1280),
            (65_536, 65_536),
            (65_537, 81_920),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, 1_310_720),
        ] {
            assert_eq!(allocated(asked), given, "{asked}");
        }
    }
}
