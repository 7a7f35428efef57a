//! Rust twins of the uniform structs in `shaders/lib/loss_io.wgsl`.

use bytemuck::{Pod, Zeroable};

/// `struct Chunk` in `lib/loss_io.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct Chunk {
    pub count: u32,
    pub item0: u32,
    pub tile0: u32,
    pub first_item: u32,
    pub first_elem: u32,
    pub spatial: u32,
    pub classes: u32,
    pub _pad: u32,
}

/// `struct LossIo` in `lib/loss_io.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct LossIo {
    pub scale: f32,
    pub accumulate_value: u32,
    pub accumulate_grad: u32,
    pub _pad: u32,
}

/// Workgroup size of every reduction-shaped kernel (`WG_SIZE` in `lib/workgroup.wgsl`).
pub(crate) const WG_SIZE: u64 = 256;
/// Items a loss kernel's workgroup covers (`WG_SIZE · ITEMS` of `lib/loss_io.wgsl`).
pub(crate) const LOSS_TILE: u64 = WG_SIZE * 4;
/// Values a reduction workgroup covers (`WG_SIZE · ITEMS` of `reduce.wgsl`).
pub(crate) const REDUCE_TILE: u64 = WG_SIZE * 8;
