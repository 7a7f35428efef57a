//! Neighbourhood stencils over stacks of 2D or 3D maps: the cross sum with
//! zero padding (`hausdorff_er`'s erosion), the cross minimum and the box
//! maximum with absent padding (`cl_dice`'s soft erosion and dilation).
//!
//! On the GPU they live in `shaders/lib/stencil.wgsl`: a workgroup takes a
//! strip of [`STRIP`] 16×16 tiles of one map in turn, one pixel of each
//! tile a thread, and reads the pixel's neighbours straight through a
//! function `stencil_input` that the including kernel defines. A kernel
//! thus applies its own pointwise step (a threshold, a normalisation) as it
//! reads each neighbour, and never writes its input map out. There is no
//! workgroup tile with a halo: on lavapipe one, with a barrier per tile, ran
//! the cross sum 2.7× slower than these direct reads, and the stencil
//! losses 1.3–2.9× slower end to end (BENCHMARKS.md, "2026-12-02 (late):
//! stencils read directly instead of through workgroup tiles");
//! on a GPU the neighbours' reads are served by the cache the tile would
//! have stood in for. The strip is kept so that a kernel's per-map
//! reductions run once per strip of 16 tiles, not once per tile.
//! `shaders/stencil.wgsl` is the stand-alone form over a buffer
//! (`record_stencil`), which the suite checks against the CPU twins here.
//!
//! "Absent" padding means a neighbour outside the map takes no part in the
//! minimum or maximum (MONAI pools with −∞ padding); "zero" padding means it
//! counts as 0 in the sum (kornia's convolution).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Step};

/// Side of a stencil tile in pixels (`ST_TILE` in lib/stencil.wgsl).
pub const TILE: usize = 16;

/// Tiles one workgroup takes in turn (`ST_STRIP` in lib/stencil.wgsl): the
/// per-map reductions of a kernel then run once per strip.
pub const STRIP: usize = 16;

/// The maps a stencil runs over: `maps` maps of `depth × height × width`
/// pixels (`depth = 1` in 2D), one after another, row-major. The stencils
/// need not know whether a map is 2D: with one plane, the neighbours along
/// the depth axis are all outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StencilGrid {
    /// Number of maps (images × channels).
    pub maps: usize,
    /// Planes per map: 1 for 2D maps.
    pub depth: usize,
    /// Rows per plane.
    pub height: usize,
    /// Columns per row.
    pub width: usize,
}

impl StencilGrid {
    /// The grid of `maps` maps whose spatial shape is `spatial` (`[H, W]` or `[D, H, W]`).
    pub fn new(maps: usize, spatial: &[usize]) -> Result<Self> {
        let (depth, height, width) = match *spatial {
            [h, w] => (1, h, w),
            [d, h, w] => (d, h, w),
            _ => return Err(Error::input("stencil", format!("maps must be 2D or 3D; the spatial shape {spatial:?} has {} axes", spatial.len()))),
        };
        let grid = StencilGrid { maps, depth, height, width };
        if maps == 0 || grid.spatial() == 0 {
            return Err(Error::input("stencil", format!("{maps} maps of spatial shape {spatial:?} hold no pixel")));
        }
        if grid.groups() >= 1 << 32 || (maps * grid.spatial()) as u64 >= 1 << 31 {
            return Err(Error::limit("stencil", format!("{maps} maps of {spatial:?} exceed the 2^31 pixels the kernels index")));
        }
        Ok(grid)
    }

    /// Pixels per map.
    pub fn spatial(&self) -> usize {
        self.depth * self.height * self.width
    }

    /// Tiles per plane, along rows and along columns.
    pub fn tiles(&self) -> (usize, usize) {
        (self.height.div_ceil(TILE), self.width.div_ceil(TILE))
    }

    /// Tiles per map, over every plane.
    pub fn tiles_per_map(&self) -> usize {
        let (ty, tx) = self.tiles();
        self.depth * ty * tx
    }

    /// Workgroups per map: one per strip of [`STRIP`] tiles.
    pub fn groups_per_map(&self) -> usize {
        self.tiles_per_map().div_ceil(STRIP)
    }

    /// Workgroups over every map.
    pub fn groups(&self) -> u64 {
        (self.maps * self.groups_per_map()) as u64
    }

    /// The `StencilGeometry` uniform of lib/stencil.wgsl for maps `[first_map, first_map + maps)`.
    pub(crate) fn uniform(&self) -> StencilGeometry {
        let (ty, tx) = self.tiles();
        StencilGeometry {
            depth: self.depth as u32,
            height: self.height as u32,
            width: self.width as u32,
            plane: (self.height * self.width) as u32,
            tiles_y: ty as u32,
            tiles_x: tx as u32,
            tiles_per_map: self.tiles_per_map() as u32,
            groups_per_map: self.groups_per_map() as u32,
        }
    }

    /// The in-map neighbours of pixel `q` of a map along each axis (`±e_a`),
    /// the pixel itself excluded, in the order of lib/stencil.wgsl's
    /// `ST_CROSS`: −z, +z, −y, +y, −x, +x.
    fn cross_neighbours(&self, q: usize) -> impl Iterator<Item = usize> {
        let (z, y, x) = self.coords(q);
        let plane = self.height * self.width;
        let mut out = Vec::with_capacity(6);
        if z > 0 { out.push(q - plane) }
        if z + 1 < self.depth { out.push(q + plane) }
        if y > 0 { out.push(q - self.width) }
        if y + 1 < self.height { out.push(q + self.width) }
        if x > 0 { out.push(q - 1) }
        if x + 1 < self.width { out.push(q + 1) }
        out.into_iter()
    }

    fn coords(&self, q: usize) -> (usize, usize, usize) {
        let plane = self.height * self.width;
        (q / plane, (q % plane) / self.width, q % self.width)
    }
}

/// The stencils, by the value `OP` takes in shaders/stencil.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StencilOp {
    /// Sum of the pixel and its 4 (2D) or 6 (3D) face neighbours, 0 outside the map.
    CrossSum = 0,
    /// Minimum of the pixel and its in-map face neighbours.
    CrossMin = 1,
    /// Maximum over the in-map pixels of the 3×3 (3×3×3) box around the pixel.
    BoxMax = 2,
    /// Which pixel `CrossMin` takes: 0 for the pixel itself, else 1 + its
    /// place in the cross's order (as f32; for the tests of the selection).
    CrossArgmin = 3,
    /// Which pixel `BoxMax` takes: its row-major place in the box, 13 the
    /// pixel itself (as f32).
    BoxArgmax = 4,
}

/// CPU twin of the value stencils, in float64, on `input` laid out as
/// `grid` (the selections' indices come from [`stencil_select_cpu`]).
pub fn stencil_cpu(op: StencilOp, grid: &StencilGrid, input: &[f64]) -> Result<Vec<f64>> {
    check_input_len(grid, input)?;
    match op {
        StencilOp::CrossSum => {
            let s = grid.spatial();
            Ok((0..input.len())
                .map(|i| {
                    let (map, q) = (&input[i / s * s..(i / s + 1) * s], i % s);
                    map[q] + grid.cross_neighbours(q).map(|r| map[r]).sum::<f64>()
                })
                .collect())
        }
        StencilOp::CrossMin | StencilOp::BoxMax => Ok(stencil_select_cpu(op, grid, input)?.0),
        StencilOp::CrossArgmin | StencilOp::BoxArgmax => {
            Err(Error::input("stencil", format!("{op:?} gives indices: stencil_select_cpu gives the pixels selected")))
        }
    }
}

/// CPU twin of the selecting stencils (`CrossMin`, `BoxMax`): each pixel's
/// value and the index in `input` of the pixel it is taken from. A tie goes
/// to the pixel itself, else to the first in the stencil's order (the
/// cross's −z, +z, −y, +y, −x, +x; the box row-major), as on the GPU.
pub fn stencil_select_cpu(op: StencilOp, grid: &StencilGrid, input: &[f64]) -> Result<(Vec<f64>, Vec<usize>)> {
    check_input_len(grid, input)?;
    if !matches!(op, StencilOp::CrossMin | StencilOp::BoxMax) {
        return Err(Error::input("stencil", format!("{op:?} selects no pixel: only CrossMin and BoxMax do")));
    }
    let s = grid.spatial();
    let mut values = vec![0.0; input.len()];
    let mut sources = vec![0; input.len()];
    for m in 0..grid.maps {
        let map = &input[m * s..(m + 1) * s];
        for q in 0..s {
            let candidates: Vec<usize> = if op == StencilOp::CrossMin { grid.cross_neighbours(q).collect() } else { box_neighbours(grid, q).collect() };
            let better = |a: f64, b: f64| if op == StencilOp::CrossMin { a < b } else { a > b };
            let best = candidates.into_iter().fold(q, |best, r| if better(map[r], map[best]) { r } else { best });
            values[m * s + q] = map[best];
            sources[m * s + q] = m * s + best;
        }
    }
    Ok((values, sources))
}

fn check_input_len(grid: &StencilGrid, input: &[f64]) -> Result<()> {
    let len = grid.maps * grid.spatial();
    if input.len() != len {
        return Err(Error::input("stencil", format!("{} input values for a grid of {len} pixels", input.len())));
    }
    Ok(())
}

/// The in-map pixels of the box around `q` (itself included), row-major.
fn box_neighbours(grid: &StencilGrid, q: usize) -> impl Iterator<Item = usize> + '_ {
    let (z, y, x) = grid.coords(q);
    let span = |v: usize, len: usize| v.saturating_sub(1)..(v + 2).min(len);
    let (zs, ys, xs) = (span(z, grid.depth), span(y, grid.height), span(x, grid.width));
    zs.flat_map(move |zz| {
        let xs = xs.clone();
        ys.clone().flat_map(move |yy| xs.clone().map(move |xx| (zz * grid.height + yy) * grid.width + xx))
    })
}

/// `struct StencilGeometry` in lib/stencil.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct StencilGeometry {
    pub depth: u32,
    pub height: u32,
    pub width: u32,
    pub plane: u32,
    pub tiles_y: u32,
    pub tiles_x: u32,
    pub tiles_per_map: u32,
    pub groups_per_map: u32,
}

/// `struct Params` in shaders/stencil.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StencilParams {
    geometry: StencilGeometry,
    maps: u32,
    _pad: [u32; 3],
}

/// Appends to `steps` one pass of `op` from `input` to `output` (whole
/// buffers of `grid.maps · grid.spatial()` f32, which must fit one binding).
pub(crate) fn record_stencil(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    op: StencilOp,
    grid: &StencilGrid,
    input: Binding,
    output: Binding,
) -> Result<()> {
    let bytes = (grid.maps * grid.spatial() * 4) as u64;
    if bytes > ctx.binding_limit() {
        return Err(Error::limit("stencil", format!("{bytes} bytes of maps exceed the device's {}-byte binding", ctx.binding_limit())));
    }
    let kernel = ctx.kernel("stencil.wgsl", "stencil_apply", &[("OP", op as u32 as f64)])?;
    let params = StencilParams { geometry: grid.uniform(), maps: grid.maps as u32, _pad: [0; 3] };
    let uniform = ctx.create_buffer_with("stencil params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
    steps.push(Step::new(&kernel, grid.groups() as u32, vec![("params", Binding::Owned(uniform)), ("input", input), ("output", output)])?);
    Ok(())
}

/// Runs `op` on the GPU over `input` (f32, laid out as `grid`) and reads the result back.
///
/// ```no_run
/// use segloss::primitives::stencil::{StencilGrid, StencilOp, run_stencil};
/// let ctx = segloss::GpuContext::new()?;
/// let grid = StencilGrid::new(1, &[2, 3])?;
/// let out = run_stencil(&ctx, StencilOp::CrossSum, &grid, &[1.0; 6])?;
/// assert_eq!(out, vec![3.0, 4.0, 3.0, 3.0, 4.0, 3.0]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub fn run_stencil(ctx: &GpuContext, op: StencilOp, grid: &StencilGrid, input: &[f32]) -> Result<Vec<f32>> {
    use crate::gpu::tensor::{DType, GpuTensor, HostTensor};
    let len = grid.maps * grid.spatial();
    if input.len() != len {
        return Err(Error::input("stencil", format!("{} input values for a grid of {len} pixels", input.len())));
    }
    let input = GpuTensor::from_host(ctx, &HostTensor::f32(&[len], input.to_vec())?)?;
    let output = GpuTensor::zeros(ctx, &[len], DType::F32)?;
    let mut steps = Vec::new();
    record_stencil(ctx, &mut steps, op, grid, Binding::slot(0), Binding::slot(1))?;
    let program = crate::gpu::program::Program::new(
        "stencil",
        vec![
            crate::gpu::program::SlotSpec { name: "input", shape: vec![len], dtype: DType::F32, written: false, required: true },
            crate::gpu::program::SlotSpec { name: "output", shape: vec![len], dtype: DType::F32, written: true, required: true },
        ],
        steps,
    );
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    program.record(ctx, &mut encoder, &[Some(&input), Some(&output)])?;
    ctx.queue().submit([encoder.finish()]);
    output.read_f32(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_sum_pads_with_zero_and_min_max_skip_the_outside() {
        // 2×3 map: 1 2 3 / 4 5 6.
        let grid = StencilGrid::new(1, &[2, 3]).unwrap();
        let map = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(stencil_cpu(StencilOp::CrossSum, &grid, &map).unwrap(), vec![7.0, 11.0, 11.0, 10.0, 17.0, 14.0]);
        assert_eq!(stencil_cpu(StencilOp::CrossMin, &grid, &map).unwrap(), vec![1.0, 1.0, 2.0, 1.0, 2.0, 3.0]);
        assert_eq!(stencil_cpu(StencilOp::BoxMax, &grid, &map).unwrap(), vec![5.0, 6.0, 6.0, 5.0, 6.0, 6.0]);
    }

    #[test]
    fn three_d_reaches_the_planes_above_and_below() {
        let grid = StencilGrid::new(1, &[3, 1, 1]).unwrap();
        let map = [1.0, 2.0, 4.0];
        assert_eq!(stencil_cpu(StencilOp::CrossSum, &grid, &map).unwrap(), vec![3.0, 7.0, 6.0]);
        assert_eq!(stencil_cpu(StencilOp::BoxMax, &grid, &map).unwrap(), vec![2.0, 4.0, 4.0]);
        // Read as three maps of one pixel, nothing is a neighbour.
        let flat = StencilGrid { maps: 3, depth: 1, height: 1, width: 1 };
        assert_eq!(stencil_cpu(StencilOp::CrossSum, &flat, &map).unwrap(), map.to_vec());
    }

    #[test]
    fn maps_are_separate() {
        let grid = StencilGrid::new(2, &[1, 2]).unwrap();
        assert_eq!(stencil_cpu(StencilOp::CrossSum, &grid, &[1.0, 2.0, 10.0, 20.0]).unwrap(), vec![3.0, 3.0, 30.0, 30.0]);
    }

    #[test]
    fn bad_grids_are_errors() {
        assert!(StencilGrid::new(1, &[4]).is_err());
        assert!(StencilGrid::new(0, &[4, 4]).is_err());
        assert!(StencilGrid::new(1, &[0, 4]).is_err());
    }
}
