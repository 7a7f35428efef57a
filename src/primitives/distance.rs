//! Distance maps of class-index label maps on the GPU: every (image, class)
//! mask of a batch in one set of dispatches, 2D or 3D, with anisotropic
//! spacing. Kernels in `shaders/distance.wgsl`; the float64 twins are
//! [`crate::reference::boundary::signed_distance`] and
//! [`crate::reference::hausdorff_dt::two_sided_distance`].
//!
//! The map of class `c` in image `n`, with `G = [target = c]` and `d` the
//! Euclidean distance between pixel centres in physical units, is one of two
//! fields ([`DistanceField`]):
//!
//! ```text
//!                 signed (SPEC.md boundary, the default)   two-sided (SPEC.md hausdorff_dt)
//! q outside G:    φ(q) = d(q, G)                           d(q, G)
//! q inside G:     φ(q) = 1 − d(q, outside G)               d(q, outside G)
//! G empty or the whole image: 0 everywhere
//! ```
//!
//! Two transforms ([`DistanceMode`]):
//! - **`exact`** (the default): the separable transform of Felzenszwalb &
//!   Huttenlocher, a pass along each axis, one invocation per line, both
//!   sides of a mask in the same sweeps. It equals
//!   `scipy.ndimage.distance_transform_edt` up to f32 rounding. The first
//!   pass reads the labels once and needs no envelope (a forward and a
//!   backward sweep, 2 loop iterations per pixel); each later pass builds
//!   both sides' lower envelopes in one sweep and queries them in another (at
//!   most 6 per pixel). Lines are limited to [`MAX_EXACT_LINE`] pixels
//!   (lavapipe cuts an invocation's loops after 65,535 iterations); longer
//!   ones are an [`Error::Limit`].
//! - **`jump_flood`**: Rong & Tan's jump flooding, run twice (JFA²: steps
//!   `2^⌈log2 max dim⌉/2, …, 2, 1`, then the same again), one invocation per
//!   pixel and step, no loop beyond 27 neighbours. Approximate:
//!   [`measure_jump_flood`](crate::tools::jump_flood::measure_jump_flood)
//!   reports how far it is from `exact` on any batch,
//!   [`measure_jump_flood_on_blobs`](crate::tools::jump_flood::measure_jump_flood_on_blobs)
//!   on 256×256 blob masks. On 4 such images
//!   × 5 classes (seeds 0 and 1) JFA² left 0.009 % and 0.004 % of the pixels
//!   wrong, by at most 0.17 px; JFA+2 (`…, 2, 1` then `2, 1`), measured the
//!   same way, left 0.045 % and 0.018 %, and one pixel 4.8 px off, which is
//!   why the second full round was chosen (1.6× the dispatches at 256²).
//!
//! "Faster" is not a given: on lavapipe (a CPU) `exact` is 20–40 times
//! faster than `jump_flood` on 8 × 19 maps of 256² (BENCHMARKS.md), as the
//! exact transform touches each pixel a few times in all where JFA² runs 16
//! steps of up to 9 neighbours each. On a GPU the exact passes have one
//! invocation per line only (38,912 for that batch), so `segloss bench` has
//! the final word.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, plan_chunks};
use crate::gpu::program::{Binding, Place, Program, SlotSpec, Step};
use crate::gpu::tensor::tensor_usage;
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};

/// Which distance transform to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistanceMode {
    /// The separable exact Euclidean transform (Felzenszwalb–Huttenlocher).
    #[default]
    Exact,
    /// Jump flooding run twice (JFA²): approximate, see
    /// [`measure_jump_flood`](crate::tools::jump_flood::measure_jump_flood).
    JumpFlood,
}

/// What a map holds, for a mask G of one image (d: the Euclidean distance
/// between pixel centres in physical units). Both are 0 everywhere when G is
/// empty or the whole image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DistanceField {
    /// `boundary`'s signed map: `d(q, G)` outside G, `1 − d(q, outside G)` inside.
    #[default]
    Signed,
    /// `hausdorff_dt`'s two-sided map: the distance to the nearest pixel of
    /// the other side, `d(q, G)` outside G and `d(q, outside G)` inside
    /// (SciPy's `edt(G) + edt(~G)`).
    TwoSided,
}

/// Longest line (pixels along any axis) the `exact` transform accepts: an
/// invocation runs at most 6 loop iterations per pixel of its line, and
/// lavapipe silently ends an invocation's loops after 65,535 iterations.
/// (The bound was 9 per pixel before both sides shared their sweeps; the
/// limit was kept, so the accepted shapes did not change.)
pub const MAX_EXACT_LINE: usize = 7168;

/// Bits jump flooding packs a pixel's coordinates into (beside a membership
/// bit and a reserved "none"): images up to 2^30 pixels, e.g. 32,768² or 1,024³.
pub const JUMP_FLOOD_BITS: u32 = 30;

/// Smallest and largest physical pixel size accepted: squared distances must
/// stay well inside f32's range.
pub const SPACING_RANGE: (f64, f64) = (1e-6, 1e6);

/// Invocations per workgroup (`LINE_WG` in `distance.wgsl`).
const WG: u64 = 64;

/// `struct PassParams` in `distance.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PassParams {
    lines: u32,
    len: u32,
    stride: u32,
    spatial: u32,
    mask0: u32,
    first_field: u32,
    first_label: u32,
    classes: u32,
    spacing: f32,
    last: u32,
    field_kind: u32,
    _pad: u32,
}

/// `struct JumpParams` in `distance.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct JumpParams {
    pixels: u32,
    spatial: u32,
    mask0: u32,
    first_field: u32,
    first_label: u32,
    classes: u32,
    step: u32,
    flags: u32,
    dims: [u32; 4],
    spacing: [f32; 4],
    packing: [u32; 4],
}

/// What a batch of distance maps is: images, their spatial extent, the
/// classes whose masks are transformed, and the physical pixel size.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Geometry {
    pub images: usize,
    /// The spatial shape as given (2 or 3 axes).
    pub spatial_shape: Vec<usize>,
    /// D, H, W (D = 1 for 2D).
    pub dims: [usize; 3],
    pub spacing: [f32; 3],
    pub class_ids: Vec<i32>,
    /// What the maps hold.
    pub field: DistanceField,
}

impl Geometry {
    /// Checks a `[N, S…]` target shape (S 2D or 3D), the classes and the spacing.
    pub fn new(target_shape: &[usize], classes: &[usize], spacing: Option<&[f64]>, mode: DistanceMode) -> Result<Self> {
        let rank = target_shape.len();
        if !(rank == 3 || rank == 4) {
            return Err(Error::input("distance", format!(
                "distance maps need targets [N, H, W] or [N, D, H, W]; got shape {target_shape:?}"
            )));
        }
        if target_shape.contains(&0) {
            return Err(Error::shape("distance", "target", target_shape, format!("the target {target_shape:?} has an empty axis")));
        }
        let spatial_shape = target_shape[1..].to_vec();
        check_spacing(spacing, spatial_shape.len())?;
        if classes.is_empty() {
            return Err(Error::input("distance", "distance maps need at least one class"));
        }
        if let Some(c) = classes.iter().find(|&&c| c > i32::MAX as usize) {
            return Err(Error::input("distance", format!("class id {c} does not fit the i32 labels")));
        }
        let mut dims = [1usize; 3];
        dims[3 - spatial_shape.len()..].copy_from_slice(&spatial_shape);
        let mut sp = [1f32; 3];
        if let Some(s) = spacing {
            for (i, v) in s.iter().enumerate() {
                sp[3 - s.len() + i] = *v as f32;
            }
        }
        let spatial: usize = spatial_shape.iter().product();
        let total = target_shape[0] as u128 * classes.len() as u128 * spatial as u128;
        if total >= 1 << 31 {
            return Err(Error::limit("distance", format!(
                "{total} distance values ({} images × {} classes × {spatial} pixels) exceed the 2^31 the kernels index",
                target_shape[0],
                classes.len()
            )));
        }
        if mode == DistanceMode::Exact
            && let Some(&n) = spatial_shape.iter().find(|&&n| n > MAX_EXACT_LINE)
        {
            return Err(Error::limit("distance", format!(
                "the exact distance transform handles lines of at most {MAX_EXACT_LINE} pixels (one invocation \
                 runs up to 6 loop iterations per pixel, and lavapipe cuts an invocation at 65,535); the target \
                 {target_shape:?} has an axis of {n}: use jump_flood, or split the image"
            )));
        }
        if mode == DistanceMode::JumpFlood && jump_flood_bits(&spatial_shape) > JUMP_FLOOD_BITS {
            return Err(Error::limit("distance", format!(
                "jump flooding packs a pixel's coordinates into {JUMP_FLOOD_BITS} bits; the spatial shape {spatial_shape:?} \
                 needs {}",
                jump_flood_bits(&spatial_shape)
            )));
        }
        Ok(Geometry {
            images: target_shape[0],
            spatial_shape,
            dims,
            spacing: sp,
            class_ids: classes.iter().map(|&c| c as i32).collect(),
            field: DistanceField::Signed,
        })
    }

    /// The same maps holding `field` instead of boundary's signed distance.
    pub fn with_field(self, field: DistanceField) -> Self {
        Geometry { field, ..self }
    }

    pub fn spatial(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn masks(&self) -> usize {
        self.images * self.class_ids.len()
    }

    /// `[N, K, S…]`.
    pub fn output_shape(&self) -> Vec<usize> {
        let mut s = vec![self.images, self.class_ids.len()];
        s.extend(&self.spatial_shape);
        s
    }
}

/// Checks a spacing: one finite size per spatial axis within [`SPACING_RANGE`].
pub(crate) fn check_spacing(spacing: Option<&[f64]>, axes: usize) -> Result<()> {
    let Some(s) = spacing else { return Ok(()) };
    if s.len() != axes {
        return Err(Error::input("distance", format!("spacing has {} entries for {axes} spatial axes", s.len())));
    }
    let (lo, hi) = SPACING_RANGE;
    if let Some(v) = s.iter().find(|v| !(v.is_finite() && **v >= lo && **v <= hi)) {
        return Err(Error::input("distance", format!("spacing {v} must be a finite pixel size in [{lo:e}, {hi:e}]")));
    }
    Ok(())
}

/// Appends the dispatches that write the distance maps of `geometry` (its
/// [`DistanceField`]) from the labels at `target` (i32 `[N, S…]`) into
/// `output` (f32 `[N, K, S…]`). Returns the scratch buffers the plan must keep.
///
/// Masks are processed in chunks whose bindings fit the device; each chunk
/// runs all its passes before the next reuses the scratch.
pub(crate) fn record_distance_maps(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    geometry: &Geometry,
    mode: DistanceMode,
    target: &Place,
    output: &Place,
) -> Result<Vec<PooledBuffer>> {
    let s = geometry.spatial() as u64;
    let k = geometry.class_ids.len() as u64;
    let align = ctx.inner.offset_alignment;
    let field_range = |a: u64, b: u64| ElementRange::new(a * s, b * s, align);
    let label_range = |a: u64, b: u64| ElementRange::new(a / k * s, ((b - 1) / k + 1) * s, align);
    // Every scratch binding holds one word per pixel of the chunk's masks.
    let chunks = plan_chunks(geometry.masks() as u64, 1, ctx.binding_limit(), |a, b| {
        field_range(a, b).bytes().max(label_range(a, b).bytes()).max((b - a) * s * 4)
    })
    .map_err(|e| Error::limit("distance", format!("one {s}-pixel distance map does not fit the device's bindings: {e}")))?;
    let largest = chunks.iter().map(|c| c.end - c.start).max().unwrap_or(1);
    let storage = wgpu::BufferUsages::STORAGE;
    // The exact transform's envelopes (sites and values, per side), or jump flooding's two feature buffers.
    let names: &[&str] = match mode {
        DistanceMode::Exact => &["outside_sites", "outside_values", "inside_sites", "inside_values"],
        DistanceMode::JumpFlood => &["features a", "features b"],
    };
    let scratch = names.iter().map(|name| ctx.scratch(name, largest * s * 4, storage)).collect::<Result<Vec<_>>>()?;
    let two_sided = geometry.field == DistanceField::TwoSided;
    let class_ids = ctx.create_buffer_with("distance classes", bytemuck::cast_slice(&geometry.class_ids), storage);
    let uniform = |bytes: &[u8]| Binding::Owned(ctx.create_buffer_with("distance params", bytes, wgpu::BufferUsages::UNIFORM));
    let [d, h, w] = geometry.dims;

    for chunk in chunks {
        let (fr, lr) = (field_range(chunk.start, chunk.end), label_range(chunk.start, chunk.end));
        let masks = chunk.end - chunk.start;
        let shared = |bindings: &mut Vec<(&str, Binding)>| {
            bindings.push(("labels", target.range(&lr)));
            bindings.push(("class_ids", Binding::owned(&class_ids)));
            bindings.push(("field", output.range(&fr)));
        };
        match mode {
            DistanceMode::Exact => {
                // The first pass reads the labels; the later ones the words it left, and the envelopes.
                let first = ctx.kernel("distance.wgsl", "edt_first", &[])?;
                let later = ctx.kernel("distance.wgsl", "edt_later", &[])?;
                // Axes of one pixel need no pass, but some pass must write the map.
                let mut axes: Vec<usize> = (0..3).filter(|&a| geometry.dims[a] > 1).collect();
                if axes.is_empty() {
                    axes.push(2);
                }
                for (i, &axis) in axes.iter().enumerate() {
                    let len = geometry.dims[axis] as u64;
                    let lines = masks * s / len;
                    let params = PassParams {
                        lines: lines as u32,
                        len: len as u32,
                        stride: geometry.dims[axis + 1..].iter().product::<usize>() as u32,
                        spatial: s as u32,
                        mask0: chunk.start as u32,
                        first_field: fr.first as u32,
                        first_label: lr.first as u32,
                        classes: k as u32,
                        spacing: geometry.spacing[axis],
                        last: (i + 1 == axes.len()) as u32,
                        field_kind: two_sided as u32,
                        _pad: 0,
                    };
                    let mut bindings = vec![("pass_params", uniform(bytemuck::bytes_of(&params)))];
                    let kernel = if i == 0 {
                        shared(&mut bindings);
                        &first
                    } else {
                        bindings.push(("field", output.range(&fr)));
                        for (name, buffer) in names.iter().zip(&scratch) {
                            bindings.push((name, Binding::owned(buffer.buffer())));
                        }
                        &later
                    };
                    steps.push(Step::new(kernel, lines.div_ceil(WG) as u32, bindings)?);
                }
            }
            DistanceMode::JumpFlood => {
                let kernel = ctx.kernel("distance.wgsl", "jump_flood_step", &[])?;
                let jumps = jump_steps(d.max(h).max(w));
                for (i, &step) in jumps.iter().enumerate() {
                    let flags = (i == 0) as u32 | (((i + 1 == jumps.len()) as u32) << 1) | ((two_sided as u32) << 2);
                    let params = JumpParams {
                        pixels: (masks * s) as u32,
                        spatial: s as u32,
                        mask0: chunk.start as u32,
                        first_field: fr.first as u32,
                        first_label: lr.first as u32,
                        classes: k as u32,
                        step: step as u32,
                        flags,
                        dims: [d as u32, h as u32, w as u32, 0],
                        spacing: [geometry.spacing[0], geometry.spacing[1], geometry.spacing[2], 0.0],
                        packing: [bits(w), bits(w) + bits(h), (1 << bits(w)) - 1, (1 << bits(h)) - 1],
                    };
                    let mut bindings = vec![("jump", uniform(bytemuck::bytes_of(&params)))];
                    shared(&mut bindings);
                    bindings.push(("features_in", Binding::owned(scratch[i % 2].buffer())));
                    bindings.push(("features_out", Binding::owned(scratch[(i + 1) % 2].buffer())));
                    steps.push(Step::new(&kernel, (masks * s).div_ceil(WG) as u32, bindings)?);
                }
            }
        }
    }
    Ok(scratch)
}

/// Bits that hold a coordinate in `[0, n)`.
fn bits(n: usize) -> u32 {
    usize::BITS - (n.max(1) - 1).leading_zeros()
}

/// Bits a jump-flooding step packs a pixel's coordinates into (at most [`JUMP_FLOOD_BITS`]).
pub fn jump_flood_bits(spatial: &[usize]) -> u32 {
    spatial.iter().map(|&n| bits(n)).sum()
}

/// JFA²'s step sizes for a largest axis of `n` pixels: `2^⌈log2 n⌉/2, …, 2, 1` twice.
pub fn jump_steps(n: usize) -> Vec<usize> {
    let mut round = Vec::new();
    let mut k = (n.next_power_of_two() / 2).max(1);
    while k >= 1 {
        round.push(k);
        k /= 2;
    }
    round.repeat(2)
}

/// The distance transform on its own, planned once for a target shape:
/// records the signed distance maps of the chosen classes of a batch of
/// label maps into a caller's tensor, in one encoder, with no host round trip.
///
/// ```no_run
/// use segloss::primitives::distance::{DistanceMode, DistancePlan};
/// use segloss::{DType, GpuContext, GpuTensor};
/// let ctx = GpuContext::new()?;
/// let plan = DistancePlan::new(&ctx, &[8, 256, 256], &(0..19).collect::<Vec<_>>(), None, DistanceMode::Exact)?;
/// # let target = GpuTensor::zeros(&ctx, &[8, 256, 256], DType::I32)?;
/// let maps = GpuTensor::zeros(&ctx, plan.output_shape(), DType::F32)?;  // [8, 19, 256, 256]
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// plan.record(&mut encoder, &target, &maps)?;
/// ctx.queue().submit([encoder.finish()]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct DistancePlan {
    ctx: GpuContext,
    program: Program,
    output_shape: Vec<usize>,
    mode: DistanceMode,
    _scratch: Vec<PooledBuffer>,
}

impl std::fmt::Debug for DistancePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistancePlan")
            .field("output_shape", &self.output_shape)
            .field("mode", &self.mode)
            .field("dispatches", &self.program.steps.len())
            .finish()
    }
}

impl DistancePlan {
    /// Plans the maps of `classes` (class ids; the output's channel k is
    /// `classes[k]`) for i32 targets of `target_shape` (`[N, H, W]` or
    /// `[N, D, H, W]`), with `spacing` one physical size per spatial axis
    /// (1 when `None`). Labels that are none of the classes are simply outside every mask.
    pub fn new(ctx: &GpuContext, target_shape: &[usize], classes: &[usize], spacing: Option<&[f64]>, mode: DistanceMode) -> Result<Self> {
        Self::with_field(ctx, target_shape, classes, spacing, mode, DistanceField::Signed)
    }

    /// [`DistancePlan::new`] for maps that hold `field`: `hausdorff_dt`'s
    /// two-sided maps of every class ([`DistanceField::TwoSided`], classes
    /// `0..C`) are what its plan takes precomputed in `LossInputs::distance`.
    pub fn with_field(
        ctx: &GpuContext,
        target_shape: &[usize],
        classes: &[usize],
        spacing: Option<&[f64]>,
        mode: DistanceMode,
        field: DistanceField,
    ) -> Result<Self> {
        let geometry = Geometry::new(target_shape, classes, spacing, mode)?.with_field(field);
        let mut steps = Vec::new();
        let scratch = record_distance_maps(ctx, &mut steps, &geometry, mode, &Place::Slot(0), &Place::Slot(1))?;
        let output_shape = geometry.output_shape();
        let slots = vec![
            SlotSpec { name: "target", shape: target_shape.to_vec(), dtype: DType::I32, written: false, required: true },
            SlotSpec { name: "distance", shape: output_shape.clone(), dtype: DType::F32, written: true, required: true },
        ];
        Ok(DistancePlan { ctx: ctx.clone(), program: Program::new("distance", slots, steps), output_shape, mode, _scratch: scratch })
    }

    /// `[N, K, S…]`: the shape of the tensor [`DistancePlan::record`] writes.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The transform this plan runs.
    pub fn mode(&self) -> DistanceMode {
        self.mode
    }

    /// Records the transform: reads `target` (i32), overwrites `output` (f32, [`Self::output_shape`]).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, target: &GpuTensor, output: &GpuTensor) -> Result<()> {
        self.program.record(&self.ctx, encoder, &[Some(target), Some(output)])
    }

    /// Uploads `target`, runs the transform and reads the maps back.
    pub fn compute(&self, target: &HostTensor) -> Result<HostTensor> {
        target.check("target")?;
        target.as_i32("target")?;
        let ctx = &self.ctx;
        let upload = ctx.scratch("distance target", target.bytes().len() as u64, tensor_usage())?;
        ctx.queue().write_buffer(&upload, 0, target.bytes());
        let target_gpu = GpuTensor::new(ctx, upload.buffer().clone(), 0, &target.shape, DType::I32)?;
        let bytes = self.output_shape.iter().product::<usize>() as u64 * 4;
        let out = ctx.scratch("distance output", bytes, tensor_usage())?;
        let output = GpuTensor::new(ctx, out.buffer().clone(), 0, &self.output_shape, DType::F32)?;
        let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.record(&mut encoder, &target_gpu, &output)?;
        ctx.queue().submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("distance transform: {e}")));
        }
        HostTensor::f32(&self.output_shape, output.read_f32(ctx)?)
    }
}

/// Signed distance maps of `classes` for host labels, computed on the GPU (see [`DistancePlan`]).
pub fn signed_distance(ctx: &GpuContext, target: &HostTensor, classes: &[usize], spacing: Option<&[f64]>, mode: DistanceMode) -> Result<HostTensor> {
    DistancePlan::new(ctx, &target.shape, classes, spacing, mode)?.compute(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_pack_into_the_bits_they_need() {
        assert_eq!(jump_flood_bits(&[256, 256]), 16);
        assert_eq!(jump_flood_bits(&[64, 128, 128]), 20);
        assert_eq!(jump_flood_bits(&[1, 1]), 0);
        assert_eq!(jump_flood_bits(&[3, 5]), 5);
        assert_eq!(jump_flood_bits(&[1 << 15, 1 << 15]), 30);
    }

    #[test]
    fn jump_steps_halve_twice() {
        assert_eq!(jump_steps(256), vec![128, 64, 32, 16, 8, 4, 2, 1, 128, 64, 32, 16, 8, 4, 2, 1]);
        assert_eq!(jump_steps(200), jump_steps(256));
        assert_eq!(jump_steps(3), vec![2, 1, 2, 1]);
        assert_eq!(jump_steps(1), vec![1, 1]);
    }

    // 6 iterations per pixel, plus a few outside the line loops, stay under lavapipe's cut-off.
    const _: () = assert!(6 * MAX_EXACT_LINE + 16 < 65_535);
}
