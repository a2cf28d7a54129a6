//! Static memory planning: gives every intermediate buffer an offset in one arena so that
//! buffers alive at the same time never overlap and dead buffers' bytes are reused.
//!
//! Greedy by size (as TFLite's and XNNPACK's planners do): buffers are placed largest first,
//! each at the lowest aligned offset where it fits between the already-placed buffers whose
//! lifetimes intersect its own. Lifetimes are inclusive step ranges of the execution order.

/// Alignment of every planned buffer, in bytes.
pub const BUFFER_ALIGN: usize = 64;

/// One buffer to place: its size and the first and last execution steps that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferUse {
    /// Size in bytes.
    pub size: usize,
    /// First step (inclusive) at which the buffer is written or read.
    pub first_step: usize,
    /// Last step (inclusive) at which the buffer is read.
    pub last_step: usize,
}

impl BufferUse {
    fn overlaps_in_time(&self, other: &BufferUse) -> bool {
        self.first_step <= other.last_step && other.first_step <= self.last_step
    }
}

/// The result: one offset per buffer (same order as the input) and the arena size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Byte offset of each buffer in the arena, a multiple of [`BUFFER_ALIGN`].
    pub offsets: Vec<usize>,
    /// Total arena size in bytes.
    pub arena_size: usize,
}

fn align_up(n: usize) -> usize {
    n.div_ceil(BUFFER_ALIGN) * BUFFER_ALIGN
}

/// Plans offsets for `buffers` (see the module docs). Zero-sized buffers get offset 0.
pub fn plan(buffers: &[BufferUse]) -> MemoryPlan {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by(|&a, &b| buffers[b].size.cmp(&buffers[a].size).then(a.cmp(&b)));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut arena_size = 0;
    for &i in &order {
        let size = align_up(buffers[i].size);
        if size == 0 {
            continue;
        }
        // Intervals [offset, end) of placed buffers alive at the same time, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].overlaps_in_time(&buffers[i]))
            .map(|&j| (offsets[j], offsets[j] + align_up(buffers[j].size)))
            .collect();
        busy.sort_unstable();
        let mut candidate = 0;
        for (start, end) in busy {
            if candidate + size <= start {
                break;
            }
            candidate = candidate.max(end);
        }
        offsets[i] = candidate;
        arena_size = arena_size.max(candidate + size);
        placed.push(i);
    }
    MemoryPlan { offsets, arena_size }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_no_conflicts(buffers: &[BufferUse], p: &MemoryPlan) {
        for (i, a) in buffers.iter().enumerate() {
            assert_eq!(p.offsets[i] % BUFFER_ALIGN, 0);
            assert!(p.offsets[i] + a.size <= p.arena_size);
            for (j, b) in buffers.iter().enumerate().skip(i + 1) {
                if a.size == 0 || b.size == 0 || !a.overlaps_in_time(b) {
                    continue;
                }
                let (ai, aj) = (p.offsets[i], p.offsets[i] + a.size);
                let (bi, bj) = (p.offsets[j], p.offsets[j] + b.size);
                assert!(
                    aj <= bi || bj <= ai,
                    "buffers {i} and {j} overlap: {a:?} {b:?} {p:?}"
                );
            }
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        // x0 -> x1 -> x2 -> x3: each buffer lives for two steps; two slots suffice.
        let buffers: Vec<BufferUse> = (0..4)
            .map(|s| BufferUse {
                size: 1000,
                first_step: s,
                last_step: s + 1,
            })
            .collect();
        let p = plan(&buffers);
        check_no_conflicts(&buffers, &p);
        assert_eq!(p.arena_size, 2 * align_up(1000));
    }

    #[test]
    fn a_skip_connection_keeps_its_buffer_alive() {
        let buffers = [
            BufferUse {
                size: 64,
                first_step: 0,
                last_step: 3,
            },
            BufferUse {
                size: 64,
                first_step: 1,
                last_step: 2,
            },
            BufferUse {
                size: 64,
                first_step: 2,
                last_step: 3,
            },
        ];
        let p = plan(&buffers);
        check_no_conflicts(&buffers, &p);
        assert_eq!(p.arena_size, 3 * 64);
    }

    proptest! {
        #[test]
        fn never_overlaps_and_never_exceeds_the_sum(
            raw in proptest::collection::vec((0usize..5000, 0usize..30, 0usize..8), 0..40)
        ) {
            let buffers: Vec<BufferUse> = raw
                .iter()
                .map(|&(size, first, len)| BufferUse { size, first_step: first, last_step: first + len })
                .collect();
            let p = plan(&buffers);
            check_no_conflicts(&buffers, &p);
            let sum: usize = buffers.iter().map(|b| align_up(b.size)).sum();
            prop_assert!(p.arena_size <= sum);
            let peak_live = (0..40)
                .map(|s| buffers.iter().filter(|b| b.first_step <= s && s <= b.last_step).map(|b| align_up(b.size)).sum::<usize>())
                .max()
                .unwrap_or(0);
            prop_assert!(p.arena_size >= peak_live);
        }
    }
}
