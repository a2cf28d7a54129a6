//! Byte moves after lowering: every gather (Transpose, Slice, Split, constant Pad) and every
//! reshape step becomes one block copy ([`KernelSpec::Copy`]) over storage bytes, and a chain
//! of moves whose intermediate values nothing else reads collapses into one move (a channel
//! shuffle, `Reshape → Transpose → Reshape`, and the Split after it become one copy per
//! Split output).
//!
//! Patterns draft their moves over logical element indices: a [`GatherSpec`] map, or (for a
//! move that requantizes, e.g. a Split whose outputs have other qparams) a [`CopySpec`] whose
//! blocks index logical elements and which carries the table. A move is first a map of
//! storage bytes (output byte → input byte, or padding) with its table; chains compose their
//! maps and tables; each map is then described as strided blocks ([`blocks_of`]), which is
//! what the program stores.
//!
//! [`GatherSpec`]: crate::program::GatherSpec

use crate::kernels::block_copy::{check_blocks, CopyBlock};
use crate::program::{CopySpec, KernelSpec, StepSpec, ValueSpec, GATHER_FILL};

/// A byte move over storage bytes: output byte `i` is input byte `map[i]`, or `fill` where
/// `map[i]` is [`GATHER_FILL`]; copied bytes go through `table` when there is one.
struct Move {
    input: usize,
    output: usize,
    map: Vec<u32>,
    fill: i8,
    table: Option<Box<[i8; 256]>>,
}

impl Move {
    /// Whether some output byte is padding.
    fn pads(&self) -> bool {
        self.map.contains(&GATHER_FILL)
    }
}

/// The storage-byte move of a gather or reshape kernel (`None` for other kernels, and for
/// inputs too large for a `u32` map, which keep their step).
fn storage_move(k: &KernelSpec, values: &[ValueSpec]) -> Option<Move> {
    let (input, output) = (k.inputs()[0], k.output());
    let (x, y) = (values.get(input)?, values.get(output)?);
    if x.numel() >= GATHER_FILL as usize {
        return None;
    }
    let mut map = vec![GATHER_FILL; y.numel()];
    match k {
        KernelSpec::Gather(g) => {
            if g.map.len() != y.numel() {
                return None;
            }
            for (l, &src) in g.map.iter().enumerate() {
                if src != GATHER_FILL {
                    map[y.storage_index(l)] = x.storage_index(src as usize) as u32;
                }
            }
            Some(Move {
                input,
                output,
                map,
                fill: g.fill,
                table: None,
            })
        }
        KernelSpec::Copy(c) => {
            let logical = logical_map(c, x.numel(), y.numel())?;
            for (l, &src) in logical.iter().enumerate() {
                if src != GATHER_FILL {
                    map[y.storage_index(l)] = x.storage_index(src as usize) as u32;
                }
            }
            Some(Move {
                input,
                output,
                map,
                fill: c.fill.unwrap_or(0),
                table: c.table.clone(),
            })
        }
        KernelSpec::Reshape(_) => {
            if x.numel() != y.numel() {
                return None;
            }
            for l in 0..y.numel() {
                map[y.storage_index(l)] = x.storage_index(l) as u32;
            }
            Some(Move {
                input,
                output,
                map,
                fill: 0,
                table: None,
            })
        }
        _ => None,
    }
}

/// The logical element map of a drafted copy (blocks over logical indices), `None` when its
/// blocks do not fit an input of `in_len` and an output of `out_len` elements.
fn logical_map(c: &CopySpec, in_len: usize, out_len: usize) -> Option<Vec<u32>> {
    if in_len >= GATHER_FILL as usize {
        return None;
    }
    check_blocks(&c.blocks, in_len, out_len, c.fill.is_some()).ok()?;
    let mut out = vec![GATHER_FILL; out_len];
    for b in &c.blocks {
        let mut idx = vec![0usize; b.dims.len()];
        for k in 0..b.len()? {
            let at = b.src as isize
                + idx
                    .iter()
                    .zip(&b.src_strides)
                    .map(|(&i, &s)| i as isize * s)
                    .sum::<isize>();
            out[b.dst + k] = at as u32;
            for a in (0..idx.len()).rev() {
                idx[a] += 1;
                if idx[a] < b.dims[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
    Some(out)
}

/// `reader ∘ producer`: the move `reader` makes when it reads `producer`'s input instead of
/// its output (tables composed: the reader's applies to the producer's bytes); `None` when
/// both pad with different bytes.
fn compose(reader: &Move, producer: &Move) -> Option<Move> {
    let mut reader_pads = false;
    let mut producer_pads = false;
    let map: Vec<u32> = reader
        .map
        .iter()
        .map(|&m| {
            if m == GATHER_FILL {
                reader_pads = true;
                return GATHER_FILL;
            }
            let p = producer.map[m as usize];
            producer_pads |= p == GATHER_FILL;
            p
        })
        .collect();
    // The producer's padding bytes go through the reader's table; the reader's do not.
    let producer_fill = match &reader.table {
        Some(t) => t[producer.fill as u8 as usize],
        None => producer.fill,
    };
    if reader_pads && producer_pads && reader.fill != producer_fill {
        return None;
    }
    let table = match (&reader.table, &producer.table) {
        (None, None) => None,
        (Some(t), None) | (None, Some(t)) => Some(t.clone()),
        (Some(r), Some(p)) => Some(Box::new(std::array::from_fn(|b| r[p[b] as u8 as usize]))),
    };
    Some(Move {
        input: producer.input,
        output: reader.output,
        map,
        fill: if producer_pads { producer_fill } else { reader.fill },
        table,
    })
}

/// Rewrites the gather and reshape steps of `steps` as block copies, collapsing chains of
/// moves in one partition whose intermediate values only further moves read, and drops the
/// values no step uses any more (renumbering the rest).
pub(super) fn plan_moves(steps: &mut Vec<StepSpec>, values: &mut Vec<ValueSpec>) {
    let mut moves: Vec<Option<Move>> = steps
        .iter()
        .map(|s| match s {
            StepSpec::Kernel { kernel, .. } => storage_move(kernel, values),
            _ => None,
        })
        .collect();
    let mut dead = vec![false; steps.len()];
    for p in 0..steps.len() {
        let Some(producer) = &moves[p] else { continue };
        let Some(readers) = move_readers(steps, &moves, &dead, producer.output, partition(&steps[p])) else {
            continue;
        };
        let Some(composed) = readers
            .iter()
            .map(|&r| compose(moves[r].as_ref().expect("a move reader"), producer))
            .collect::<Option<Vec<Move>>>()
        else {
            continue;
        };
        for (&r, m) in readers.iter().zip(composed) {
            moves[r] = Some(m);
        }
        dead[p] = true;
    }
    let mut kept = Vec::with_capacity(steps.len());
    for (i, mut step) in std::mem::take(steps).into_iter().enumerate() {
        if dead[i] {
            continue;
        }
        if let (StepSpec::Kernel { kernel, .. }, Some(m)) = (&mut step, moves[i].take()) {
            let pads = m.pads();
            *kernel = KernelSpec::Copy(CopySpec {
                input: m.input,
                output: m.output,
                blocks: blocks_of(&m.map),
                fill: pads.then_some(m.fill),
                table: m.table,
            });
        }
        kept.push(step);
    }
    *steps = kept;
    drop_unused_values(steps, values);
}

/// The partition of a kernel step.
fn partition(s: &StepSpec) -> Option<usize> {
    match s {
        StepSpec::Kernel { partition, .. } => Some(*partition),
        _ => None,
    }
}

/// The live steps that read value `v`, when there is at least one and every one is a move of
/// `part`; `None` when anything else reads `v` (a partition exit, another kernel).
fn move_readers(
    steps: &[StepSpec],
    moves: &[Option<Move>],
    dead: &[bool],
    v: usize,
    part: Option<usize>,
) -> Option<Vec<usize>> {
    let mut readers = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if dead[i] {
            continue;
        }
        let reads = match s {
            StepSpec::Kernel { kernel, .. } => kernel.inputs().contains(&v),
            StepSpec::Dequantize { value, .. } => *value == v,
            _ => false,
        };
        if !reads {
            continue;
        }
        match &moves[i] {
            Some(m) if m.input == v && partition(s) == part => readers.push(i),
            _ => return None,
        }
    }
    (!readers.is_empty()).then_some(readers)
}

/// Removes the values no step reads or writes and renumbers the steps' references.
fn drop_unused_values(steps: &mut [StepSpec], values: &mut Vec<ValueSpec>) {
    let mut used = vec![false; values.len()];
    for s in steps.iter() {
        match s {
            StepSpec::Kernel { kernel, .. } => {
                for v in kernel.inputs().into_iter().chain([kernel.output()]) {
                    used[v] = true;
                }
            }
            StepSpec::Quantize { value, .. } | StepSpec::Dequantize { value, .. } => used[*value] = true,
            _ => {}
        }
    }
    if used.iter().all(|&u| u) {
        return;
    }
    let mut new_index = vec![usize::MAX; values.len()];
    let mut kept = Vec::new();
    for (i, v) in std::mem::take(values).into_iter().enumerate() {
        if used[i] {
            new_index[i] = kept.len();
            kept.push(v);
        }
    }
    *values = kept;
    for s in steps.iter_mut() {
        match s {
            StepSpec::Kernel { kernel, .. } => {
                kernel.remap_values(&mut |v| new_index[v], &mut |v| new_index[v])
            }
            StepSpec::Quantize { value, .. } | StepSpec::Dequantize { value, .. } => {
                *value = new_index[*value]
            }
            _ => {}
        }
    }
}

/// A storage-byte map (output byte → input byte, or [`GATHER_FILL`]) as strided blocks:
/// from each byte no block covers yet, the longest run of equally spaced sources, then as
/// many repetitions of that block at an equal source distance as follow, and so on
/// outwards. Padding bytes belong to no block.
pub fn blocks_of(map: &[u32]) -> Vec<CopyBlock> {
    let mut blocks = Vec::new();
    let mut a = 0usize;
    while a < map.len() {
        if map[a] == GATHER_FILL {
            a += 1;
            continue;
        }
        let b = block_at(map, a);
        a += b.len().unwrap_or(1);
        blocks.push(b);
    }
    blocks
}

/// The block starting at output byte `a` (not padding).
fn block_at(map: &[u32], a: usize) -> CopyBlock {
    let at = |i: usize| map[i] as i64;
    // Innermost: the run of sources at a constant distance.
    let mut n = 1usize;
    let mut stride = 0i64;
    if a + 1 < map.len() && map[a + 1] != GATHER_FILL {
        stride = at(a + 1) - at(a);
        n = 2;
        while a + n < map.len() && map[a + n] != GATHER_FILL && at(a + n) == at(a) + n as i64 * stride {
            n += 1;
        }
    }
    let mut dims = vec![n];
    let mut strides = vec![stride as isize];
    let mut len = n;
    // Outwards: repetitions of the block so far at a constant source distance.
    loop {
        let first = a + len;
        if first + len > map.len() || map[first] == GATHER_FILL {
            break;
        }
        let step = at(first) - at(a);
        let repeats = |k: usize| {
            let start = a + k * len;
            start + len <= map.len()
                && (0..len)
                    .all(|t| map[start + t] != GATHER_FILL && at(start + t) == at(a + t) + k as i64 * step)
        };
        let mut count = 1usize;
        while repeats(count) {
            count += 1;
        }
        if count == 1 {
            break;
        }
        dims.insert(0, count);
        strides.insert(0, step as isize);
        len *= count;
    }
    CopyBlock {
        dst: a,
        src: map[a] as usize,
        dims,
        src_strides: strides,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::block_copy::{check_blocks, copy_blocks_reference};

    /// The bytes `map` gathers from `0, 1, 2, ...` (padding -1), and the same through the
    /// blocks.
    fn through_blocks(map: &[u32], in_len: usize) -> (Vec<i8>, Vec<i8>, usize) {
        let x: Vec<i8> = (0..in_len).map(|i| (i % 251) as i8).collect();
        let want: Vec<i8> = map
            .iter()
            .map(|&m| if m == GATHER_FILL { -1 } else { x[m as usize] })
            .collect();
        let blocks = blocks_of(map);
        let pads = map.contains(&GATHER_FILL);
        check_blocks(&blocks, in_len, map.len(), pads).unwrap();
        let mut got = vec![7i8; map.len()];
        copy_blocks_reference(&x, &blocks, pads.then_some(-1), &mut got);
        (got, want, blocks.len())
    }

    #[test]
    fn a_channel_shuffle_and_a_channel_split_are_one_block() {
        // NHWC, 5 pixels, 2 groups of 6 channels: out channel 2c + g reads channel 6g + c.
        let shuffle: Vec<u32> = (0..5 * 12)
            .map(|i| {
                let (p, c) = (i / 12, i % 12);
                (p * 12 + (c % 2) * 6 + c / 2) as u32
            })
            .collect();
        let (got, want, n) = through_blocks(&shuffle, 60);
        assert_eq!((got, n), (want, 1));
        let split: Vec<u32> = (0..5 * 4).map(|i| ((i / 4) * 12 + 3 + i % 4) as u32).collect();
        let b = blocks_of(&split);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].dims.as_slice(), b[0].src_strides.as_slice()),
            (&[5, 4][..], &[12, 1][..])
        );
    }

    #[test]
    fn composed_moves_apply_both_maps_and_tables_in_order() {
        let f = GATHER_FILL;
        let table = |k: i8| -> Option<Box<[i8; 256]>> {
            Some(Box::new(std::array::from_fn(|b| (b as i8).wrapping_add(k))))
        };
        // The producer pads with 5 and adds 1; the reader reverses and adds 10.
        let producer = Move {
            input: 0,
            output: 1,
            map: vec![f, 0, 1],
            fill: 5,
            table: table(1),
        };
        let reader = Move {
            input: 1,
            output: 2,
            map: vec![2, 1, 0],
            fill: 0,
            table: table(10),
        };
        let m = compose(&reader, &producer).unwrap();
        assert_eq!((m.input, m.output), (0, 2));
        assert_eq!(m.map, [1, 0, f]);
        // Producer padding goes through the reader's table.
        assert_eq!(m.fill, 15);
        assert_eq!(m.table.as_ref().unwrap()[3], 14);
        // A reader padding with another byte than the producer's padding (after the table) does not fuse.
        let pads = Move {
            map: vec![f, 1, 0],
            fill: 7,
            ..reader
        };
        assert!(compose(&pads, &producer).is_none());
    }

    #[test]
    fn irregular_and_padded_maps_round_trip() {
        let f = GATHER_FILL;
        let maps: [Vec<u32>; 4] = [
            vec![f, 0, 1, f, 2, 3, f, f, f],
            vec![3, 2, 1, 0, 9, 4, 4, 4, 5],
            vec![0, 5, 1, 6, 2, 7, 10, 11],
            vec![],
        ];
        for m in maps {
            let (got, want, _) = through_blocks(&m, 12);
            assert_eq!(got, want, "{m:?}");
        }
    }
}
