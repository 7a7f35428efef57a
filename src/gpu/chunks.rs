//! Splitting work whose tensors exceed one storage binding (128 MiB on many
//! devices) into chunks, each bound at an aligned sub-range of the buffers.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::layout::Chunk;

/// Workgroups per dispatch dimension that every device accepts.
pub(crate) const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Dispatch size for `groups` workgroups, folded into two dimensions when
/// there are more than one dimension holds; kernels recover the linear index
/// as `id.x + id.y * num_workgroups.x` and skip the overhang.
pub(crate) fn grid(groups: u32) -> (u32, u32) {
    if groups <= MAX_GROUPS_PER_DIM {
        (groups.max(1), 1)
    } else {
        let y = groups.div_ceil(MAX_GROUPS_PER_DIM);
        (groups.div_ceil(y), y)
    }
}

/// A range of elements of a tensor, bound from an aligned start: the kernel
/// indexes the binding with `element - first`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ElementRange {
    /// First element the binding covers (aligned down).
    pub first: u64,
    /// One past the last element the work touches.
    pub end: u64,
}

impl ElementRange {
    /// The binding for elements `[lo, hi)` with the start aligned down to
    /// `align` bytes for elements of 2 bytes and of 4 (a multiple of
    /// `align / 2` elements), so that one chunking serves a tensor in f32
    /// and in f16 or bf16 (and the start of a packed binding is a whole word).
    pub fn new(lo: u64, hi: u64, align: u64) -> Self {
        let quantum = (align / 2).max(2);
        let first = lo / quantum * quantum;
        ElementRange { first, end: hi.max(first + 1) }
    }

    /// Bytes the binding covers at 4 bytes an element (the most any
    /// tensor bound by range takes).
    pub fn bytes(&self) -> u64 {
        self.bytes_of(4)
    }

    /// Bytes the binding covers at `size` bytes an element, rounded up to
    /// whole 4-byte words (as bindings must be).
    pub fn bytes_of(&self, size: u64) -> u64 {
        ((self.end - self.first) * size).next_multiple_of(4)
    }
}

/// The elements that tiles `[a, b)` cover, where segments of `len` elements
/// lie one after another and tile `g` covers `[t·tile, min((t+1)·tile, len))`
/// of segment `g / tiles` (t = `g % tiles`): how reductions and per-group
/// passes map their workgroups onto data.
pub(crate) fn tile_span(a: u64, b: u64, tiles: u64, len: u64, tile: u64) -> Range<u64> {
    let start = (a / tiles) * len + (a % tiles) * tile;
    let last = b - 1;
    start..(last / tiles) * len + ((last % tiles + 1) * tile).min(len)
}

/// Splits `total` work items into consecutive chunks whose every binding
/// fits in `limit` bytes. `span(a, b)` gives the largest binding, in bytes,
/// that items `[a, b)` need. Chunk starts are multiples of `quantum`.
pub(crate) fn plan_chunks(
    total: u64,
    quantum: u64,
    limit: u64,
    span: impl Fn(u64, u64) -> u64,
) -> Result<Vec<Range<u64>>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < total {
        let fits = |end: u64| span(start, end) <= limit;
        let smallest = (start + quantum).min(total);
        if !fits(smallest) {
            return Err(Error::limit("bindings", format!(
                "{} work items need a {}-byte binding; the device binds at most {limit} bytes",
                smallest - start,
                span(start, smallest)
            )));
        }
        // Largest end (a multiple of quantum, or total) that fits: binary search over quanta.
        let (mut lo, mut hi) = (1u64, (total - start).div_ceil(quantum));
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if fits((start + mid * quantum).min(total)) { lo = mid } else { hi = mid - 1 }
        }
        let end = (start + lo * quantum).min(total);
        chunks.push(start..end);
        start = end;
    }
    Ok(chunks)
}

/// Tensors laid out as `[N, C, S]` (logits, dense targets, gradients) beside
/// `[N, S]` ones (class indices, per-pixel values), seen as N·S pixels
/// numbered `n·S + s`, each with C values at stride S.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PixelLayout {
    pub images: u64,
    pub classes: u64,
    pub spatial: u64,
}

/// One chunk of work: units `units` (pixels, tiles, …), and the bindings
/// that cover their pixels in `[N, C, S]` and `[N, S]` tensors.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PixelChunk {
    pub units: Range<u64>,
    pub logits: ElementRange,
    pub pixels: ElementRange,
}

impl PixelLayout {
    /// `[N, C, S]` from the three sizes.
    pub fn new(images: usize, classes: usize, spatial: usize) -> Self {
        PixelLayout { images: images as u64, classes: classes as u64, spatial: spatial as u64 }
    }

    /// `numel` elements seen one by one: `[1, 1, numel]`.
    pub fn elements(numel: usize) -> Self {
        Self::new(1, 1, numel)
    }

    /// N·S.
    pub fn pixels(&self) -> u64 {
        self.images * self.spatial
    }

    /// The binding of an `[N, C, S]` tensor that holds every class of pixels `[a, b)`.
    pub fn logit_range(&self, a: u64, b: u64, align: u64) -> ElementRange {
        let (c, s) = (self.classes, self.spatial);
        let (na, sa) = (a / s, a % s);
        let (nb, sb) = ((b - 1) / s, (b - 1) % s);
        ElementRange::new(na * c * s + sa, nb * c * s + (c - 1) * s + sb + 1, align)
    }

    /// The binding of an `[N, S]` tensor that holds pixels `[a, b)`.
    pub fn pixel_range(&self, a: u64, b: u64, align: u64) -> ElementRange {
        ElementRange::new(a, b, align)
    }

    /// Splits `units` consecutive work units into chunks whose `[N, C, S]`
    /// and `[N, S]` bindings each fit in `limit` bytes. Units `[a, b)` cover
    /// pixels `cover(a, b)` (a range that grows with b); chunk starts are
    /// multiples of `quantum`.
    pub fn chunks(
        &self,
        units: u64,
        quantum: u64,
        limit: u64,
        align: u64,
        cover: impl Fn(u64, u64) -> Range<u64>,
    ) -> Result<Vec<PixelChunk>> {
        self.chunks_with(units, quantum, limit, align, cover, |_, _| 0)
    }

    /// [`PixelLayout::chunks`] where units `[a, b)` also need `scratch(a, b)` bytes in one binding.
    fn chunks_with(
        &self,
        units: u64,
        quantum: u64,
        limit: u64,
        align: u64,
        cover: impl Fn(u64, u64) -> Range<u64>,
        scratch: impl Fn(u64, u64) -> u64,
    ) -> Result<Vec<PixelChunk>> {
        let ranges = |a: u64, b: u64| {
            let px = cover(a, b);
            (self.logit_range(px.start, px.end, align), self.pixel_range(px.start, px.end, align))
        };
        let chunks = plan_chunks(units, quantum, limit, |a, b| {
            let (l, p) = ranges(a, b);
            l.bytes().max(p.bytes()).max(scratch(a, b))
        })?;
        Ok(chunks
            .into_iter()
            .map(|units| {
                let (logits, pixels) = ranges(units.start, units.end);
                PixelChunk { units, logits, pixels }
            })
            .collect())
    }

    /// Splits the images into chunks of whole images (the units) whose
    /// logits and targets fit one binding each, and whose scratch, at
    /// `scratch_per_image` bytes an image, does too.
    pub fn image_chunks(&self, limit: u64, align: u64, scratch_per_image: u64) -> Result<Vec<PixelChunk>> {
        let s = self.spatial;
        self.chunks_with(self.images, 1, limit, align, |a, b| a * s..b * s, |a, b| (b - a) * scratch_per_image)
    }

    /// The `Chunk` uniform of a chunk whose units are whole images (the
    /// stencil losses): `count` and `item0` in pixels.
    pub fn image_chunk_uniform(&self, chunk: &PixelChunk) -> Chunk {
        let s = self.spatial;
        let images = PixelChunk { units: chunk.units.start * s..chunk.units.end * s, ..chunk.clone() };
        self.chunk_uniform(&images, 0)
    }

    /// The `Chunk` uniform of a chunk: `count` and `item0` in its units.
    pub fn chunk_uniform(&self, chunk: &PixelChunk, tile0: u64) -> Chunk {
        Chunk {
            count: (chunk.units.end - chunk.units.start) as u32,
            item0: chunk.units.start as u32,
            tile0: tile0 as u32,
            first_item: chunk.pixels.first as u32,
            first_elem: chunk.logits.first as u32,
            spatial: self.spatial as u32,
            classes: self.classes as u32,
            _pad: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_group_within_the_dimension_limit() {
        for g in [1u32, 2, 65_535, 65_536, 200_001, 4_000_000] {
            let (x, y) = grid(g);
            assert!(x <= MAX_GROUPS_PER_DIM && y <= MAX_GROUPS_PER_DIM);
            assert!(x as u64 * y as u64 >= g as u64);
        }
    }

    #[test]
    fn chunks_tile_the_items_and_respect_the_limit() {
        let span = |a: u64, b: u64| ElementRange::new(a * 3, b * 3 + 7, 256).bytes();
        let chunks = plan_chunks(100_000, 64, 40_000, span).unwrap();
        assert!(chunks.len() > 1);
        assert_eq!(chunks[0].start, 0);
        assert_eq!(chunks.last().unwrap().end, 100_000);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(w[0].end % 64, 0);
        }
        for c in &chunks {
            assert!(span(c.start, c.end) <= 40_000);
        }
    }

    #[test]
    fn pixel_chunks_bind_every_class_of_their_pixels() {
        let layout = PixelLayout { images: 3, classes: 5, spatial: 1000 };
        let chunks = layout.chunks(layout.pixels(), 64, 32768, 256, |a, b| a..b).unwrap();
        assert!(chunks.len() > 2);
        assert_eq!(chunks.last().unwrap().units.end, 3000);
        for ch in &chunks {
            assert!(ch.logits.bytes() <= 32768 && ch.pixels.bytes() <= 32768);
            for px in [ch.units.start, ch.units.end - 1] {
                let (n, s) = (px / 1000, px % 1000);
                for c in 0..5 {
                    let e = n * 5000 + c * 1000 + s;
                    assert!(ch.logits.first <= e && e < ch.logits.end);
                }
                assert!(ch.pixels.first <= px && px < ch.pixels.end);
            }
        }
    }

    #[test]
    fn tile_spans_stop_at_segment_ends() {
        // Segments of 10 elements in tiles of 4: tiles 0..3 cover segment 0, 3..6 segment 1.
        assert_eq!(tile_span(0, 1, 3, 10, 4), 0..4);
        assert_eq!(tile_span(2, 3, 3, 10, 4), 8..10);
        assert_eq!(tile_span(2, 4, 3, 10, 4), 8..14);
        assert_eq!(tile_span(0, 6, 3, 10, 4), 0..20);
    }

    #[test]
    fn a_quantum_that_cannot_fit_is_an_error() {
        assert!(plan_chunks(10, 1, 16, |a, b| (b - a) * 1000).is_err());
    }
}
