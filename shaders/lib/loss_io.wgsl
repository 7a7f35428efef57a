// The uniforms every loss kernel shares. Rust twins: `gpu::layout::{Chunk, LossIo}`.

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
