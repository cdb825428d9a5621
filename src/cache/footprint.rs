//! Bytes the allocator really hands out for a request of a given size:
//! what the weigher counts per allocation (see [`super::weight`]).

/// The reference count `bytes` allocates for a buffer once it is shared
/// (its first clone: a stored body or value handed to an answer).
pub const SHARED_COUNT: usize = 32;

/// Bytes the allocator hands out for a request of `size`: mimalloc's
/// size classes (8-byte steps up to 64 bytes, then four classes per
/// power of two), and whole 64 KiB slices for large objects.
pub fn allocated(size: usize) -> usize {
    const LARGE: usize = 64 * 1024;
    match size {
        0 => 0,
        1..=64 => size.next_multiple_of(8),
        65..=LARGE => {
            let base = 1usize << (usize::BITS - 1 - (size - 1).leading_zeros());
            size.next_multiple_of(base / 4)
        }
        _ => size.next_multiple_of(LARGE),
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
            (64, 64),
            (65, 80),
            (100, 112),
            (128, 128),
            (129, 160),
            (1024, 1024),
            (1025, 1280),
            (65_536, 65_536),
            (65_537, 131_072),
            (1 << 20, 1 << 20),
        ] {
            assert_eq!(allocated(asked), given, "{asked}");
        }
    }
}
