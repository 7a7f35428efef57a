// The uniforms every loss kernel shares. Rust twins: `gpu::layout::{Chunk, LossIo}`.

//#include "lib/workgroup.wgsl"

// One chunk of a loss's work: a run of items (pixels, or elements) whose
// bindings fit the device (see gpu/chunks.rs). Items live in an [N, S]
// space; logit-shaped tensors are [N, C, S].
struct Chunk {
    count: u32,       // items in this chunk
    item0: u32,       // global index of the chunk's first item
    tile0: u32,       // partial-sum slot of the chunk's first tile
    first_item: u32,  // element at which item-shaped bindings (labels, per-pixel values) start
    first_elem: u32,  // element at which logit-shaped bindings (logits, grad) start
    spatial: u32,     // S
    classes: u32,     // C
    _pad: u32,
}

// How a loss term writes its outputs: `scale` is the term's weight in a
// compound loss and multiplies both value and gradient; accumulate adds
// into the caller's buffers instead of overwriting them.
struct LossIo {
    scale: f32,
    accumulate_value: u32,
    accumulate_grad: u32,
    _pad: u32,
}

// Items per thread; a workgroup reduces one tile of WG_SIZE * ITEMS items.
const ITEMS: u32 = 4u;

// Whether tile `tile` lies past the chunk's items (the overhang of a 2D-folded dispatch).
fn tile_is_past(tile: u32, count: u32) -> bool {
    return tile * WG_SIZE * ITEMS >= count;
}

// Chunk-relative item that thread `lid` takes on its k-th step through tile `tile`
// (strided by WG_SIZE, so neighbouring threads touch neighbouring items).
fn tile_item(tile: u32, k: u32, lid: u32) -> u32 {
    return tile * WG_SIZE * ITEMS + k * WG_SIZE + lid;
}

// The factor on a term's gradient: its weight over the mean's denominator,
// 0 when that is 0 (a mean over nothing).
fn mean_scale(scale: f32, denominator: f32) -> f32 {
    return scale * select(0.0, 1.0 / denominator, denominator > 0.0);
}
