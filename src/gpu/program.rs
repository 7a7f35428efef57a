//! A recorded computation: the dispatches a plan makes, with bindings that
//! refer either to buffers the plan owns or to the caller's tensors, which
//! are only known when the program is recorded into an encoder.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, grid};
use crate::gpu::pipeline::{Access, Kernel};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::{DType, GpuTensor};

/// Where one binding's buffer comes from: the one type for kernels' inputs
/// and outputs, whether the primitives or the losses bind them.
#[derive(Clone, Debug)]
pub(crate) enum Binding {
    /// The caller's tensor in slot `.0`: the given element range, or all of it.
    Slot(usize, Option<ElementRange>),
    /// A buffer the plan owns, bound whole.
    Owned(wgpu::Buffer),
    /// Elements `.1` of a buffer the plan owns (a tensor the plan computes
    /// and processes in chunks, as it does a caller's).
    OwnedRange(wgpu::Buffer, ElementRange),
}

/// Where a tensor that steps bind chunk by chunk lives: a caller's slot, or
/// a buffer the plan owns (its intermediate masks and maps).
#[derive(Clone, Debug)]
pub(crate) enum Place {
    Slot(usize),
    Owned(wgpu::Buffer),
}

impl Place {
    /// The binding of elements `range` of the tensor.
    pub fn range(&self, range: &ElementRange) -> Binding {
        match self {
            Place::Slot(slot) => Binding::Slot(*slot, Some(range.clone())),
            Place::Owned(buffer) => Binding::OwnedRange(buffer.clone(), range.clone()),
        }
    }
}

impl Binding {
    /// A plan-owned buffer, bound whole.
    pub fn owned(buffer: &wgpu::Buffer) -> Self {
        Binding::Owned(buffer.clone())
    }

    /// The whole of the caller's tensor in `slot`.
    pub fn slot(slot: usize) -> Self {
        Binding::Slot(slot, None)
    }

    /// Elements `range` of the caller's tensor in `slot`.
    pub fn range(slot: usize, range: &ElementRange) -> Self {
        Binding::Slot(slot, Some(range.clone()))
    }
}

/// One dispatch: a kernel, its bindings by binding number, and its workgroup count.
#[derive(Clone)]
pub(crate) struct Step {
    pub kernel: Arc<Kernel>,
    pub sources: Vec<(u32, Binding)>,
    pub groups: u32,
}

impl Step {
    /// A dispatch of `groups` workgroups of `kernel`, its bindings given by
    /// their WGSL names. Every binding the entry point uses must be given,
    /// and every name given must be one it uses: a mistyped or forgotten
    /// binding is an error when the plan is made, not a wrong number later.
    pub fn new(kernel: &Arc<Kernel>, groups: u32, bindings: Vec<(&str, Binding)>) -> Result<Self> {
        let mut sources = Vec::with_capacity(bindings.len());
        for (name, binding) in bindings {
            let Some(b) = kernel.binding(name) else {
                return Err(Error::Device(format!("{} uses no binding named {name}", kernel.label)));
            };
            if sources.iter().any(|(n, _)| *n == b.binding) {
                return Err(Error::Device(format!("{}: binding {name} given twice", kernel.label)));
            }
            sources.push((b.binding, binding));
        }
        if let Some(missing) = kernel.bindings.iter().find(|b| !sources.iter().any(|(n, _)| *n == b.binding)) {
            return Err(Error::Device(format!("{}: binding {} was not given", kernel.label, missing.name)));
        }
        Ok(Step { kernel: kernel.clone(), sources, groups })
    }

    /// [`Step::new`] with the bindings the entry point uses picked out of
    /// `table`: for a kernel file whose entry points share one table (a
    /// name the entry does not use is left out, not an error).
    pub fn from_table(kernel: &Arc<Kernel>, groups: u32, table: Vec<(&str, Binding)>) -> Result<Self> {
        Self::new(kernel, groups, table.into_iter().filter(|(name, _)| kernel.binding(name).is_some()).collect())
    }
}

/// What a program expects in each of its caller slots.
#[derive(Clone, Debug)]
pub(crate) struct SlotSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub written: bool,
    pub required: bool,
}

/// A sequence of dispatches recorded into one compute pass.
pub(crate) struct Program {
    /// The loss or primitive it computes, as its errors name it.
    pub name: &'static str,
    pub slots: Vec<SlotSpec>,
    pub steps: Vec<Step>,
    /// The bind groups of the last few recordings, the caller buffers they
    /// name and the kernels they were made for, most recent first: a
    /// training loop whose engine hands it the same few buffer placements
    /// step after step (a pool cycling through its pages) reuses them and
    /// creates no wgpu object after its first steps.
    bound: Mutex<Vec<Bound>>,
}

/// How many recordings' bind groups a program keeps. An engine's pool
/// alternates between a handful of placements of the same tensors; each
/// entry costs a few bind groups, which also keep their buffers alive.
const BOUND_KEPT: usize = 8;

/// A recording's caller buffers (buffer and offset per slot), and what was made for them.
struct Bound {
    key: Vec<Option<(wgpu::Buffer, u64)>>,
    steps: Range<usize>,
    kernels: Vec<Arc<Kernel>>,
    groups: Vec<wgpu::BindGroup>,
}

impl Program {
    pub fn new(name: &'static str, slots: Vec<SlotSpec>, steps: Vec<Step>) -> Self {
        Program { name, slots, steps, bound: Mutex::new(Vec::new()) }
    }

    /// Checks the caller's tensors against the slots, then records every step.
    pub fn record(&self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, tensors: &[Option<&GpuTensor>]) -> Result<()> {
        self.record_steps(ctx, encoder, tensors, 0..self.steps.len())
    }

    /// Records the steps `steps` alone (one phase of a data-parallel plan,
    /// `losses/shards.rs`): a slot is required when one of these steps binds it.
    pub fn record_steps(&self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, tensors: &[Option<&GpuTensor>], steps: Range<usize>) -> Result<()> {
        let access = self.check(ctx, tensors, &steps)?;
        let key: Vec<Option<(wgpu::Buffer, u64)>> = tensors.iter().map(|t| t.map(|t| (t.buffer.clone(), t.offset))).collect();
        let part = &self.steps[steps.clone()];
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        match bound.iter().position(|b| b.key == key && b.steps == steps) {
            Some(i) => bound[..=i].rotate_right(1),
            None => {
                // Fixed by the plan, not the tensors: checked once per placement, like the bind groups.
                self.check_elements(part)?;
                let kernels = part.iter().map(|s| ctx.with_access(&s.kernel, access)).collect::<Result<Vec<_>>>()?;
                let groups = part.iter().zip(&kernels).map(|(s, k)| bind(ctx, s, k, tensors)).collect();
                bound.truncate(BOUND_KEPT - 1);
                bound.insert(0, Bound { key, steps, kernels, groups });
            }
        }
        let Bound { kernels, groups, .. } = &bound[0];
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("segloss"), timestamp_writes: None });
        for ((step, kernel), group) in part.iter().zip(kernels).zip(groups) {
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, group, &[]);
            let (x, y) = grid(step.groups);
            pass.dispatch_workgroups(x, y, 1);
        }
        Ok(())
    }

    /// Whether any step binds caller slot `slot`.
    fn binds(&self, slot: usize) -> bool {
        self.binds_in(slot, &(0..self.steps.len()))
    }

    /// Whether one of the steps `steps` binds caller slot `slot`.
    fn binds_in(&self, slot: usize, steps: &Range<usize>) -> bool {
        self.steps[steps.clone()].iter().flat_map(|s| &s.sources).any(|(_, source)| matches!(source, Binding::Slot(i, _) if *i == slot))
    }

    /// Checks the caller's tensors against the slots, and says how the
    /// kernels must declare their bindings for them: read-write throughout
    /// when a written tensor shares its buffer with another.
    fn check(&self, ctx: &GpuContext, tensors: &[Option<&GpuTensor>], steps: &Range<usize>) -> Result<Access> {
        let mut access = Access::Declared;
        for (i, spec) in self.slots.iter().enumerate() {
            let Some(t) = tensors.get(i).copied().flatten() else {
                if spec.required && self.binds_in(i, steps) {
                    return Err(Error::input(self.name, format!("{} is required but was not given", spec.name)));
                }
                continue;
            };
            // A tensor this plan never reads (a weight given to a plan made
            // without one) would be ignored: a silently wrong number.
            if !self.binds(i) {
                return Err(Error::input(self.name, format!("{} was given, but this plan was made without it", spec.name)));
            }
            if t.shape != spec.shape {
                return Err(Error::shape(self.name, spec.name, &t.shape, format!("{} has shape {:?}; this plan was made for {:?}", spec.name, t.shape, spec.shape)));
            }
            if t.dtype != spec.dtype {
                return Err(Error::input(self.name, format!("{} is {}; this plan was made for {}", spec.name, t.dtype.name(), spec.dtype.name())));
            }
            if t.offset % ctx.inner.offset_alignment != 0 || t.offset + t.byte_len() > t.buffer.size() {
                return Err(Error::input(self.name, format!("{} does not fit its buffer at an aligned offset", spec.name)));
            }
            if !t.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
                return Err(Error::input(self.name, format!("{}'s buffer lacks STORAGE usage", spec.name)));
            }
        }
        let given: Vec<(&str, bool, &GpuTensor)> = self
            .slots
            .iter()
            .zip(tensors)
            .filter_map(|(spec, t)| t.map(|t| (spec.name, spec.written, t)))
            .collect();
        if check_disjoint(self.name, &given)? {
            access = Access::ReadWrite;
        }
        Ok(access)
    }

    /// Refuses a step that reads a caller's slot through an `//#elements`
    /// binding compiled for another element type than the slot's: a kernel
    /// compiled for f32 would read an f16 tensor's bits as garbage.
    fn check_elements(&self, steps: &[Step]) -> Result<()> {
        for step in steps {
            for (number, source) in &step.sources {
                let Binding::Slot(slot, _) = source else { continue };
                let spec = &self.slots[*slot];
                if let Some((name, element)) = step.kernel.element_at(*number)
                    && element != spec.dtype
                {
                    return Err(Error::Device(format!(
                        "{}: binding {name} was compiled for {} elements, but {} is {}",
                        step.kernel.label,
                        element.name(),
                        spec.name,
                        spec.dtype.name()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Refuses two of the caller's `(name, written, tensor)` that share a buffer
/// at overlapping ranges where one of them is written (an engine's pool
/// sub-allocates, so disjoint ranges of one buffer are fine); returns
/// whether any two share a buffer with one written, which needs the
/// kernels' all-read-write variant ([`Access::ReadWrite`]).
pub(crate) fn check_disjoint(scope: &'static str, tensors: &[(&str, bool, &GpuTensor)]) -> Result<bool> {
    let mut shared = false;
    for (i, &(name, written, t)) in tensors.iter().enumerate() {
        for &(other, other_written, u) in &tensors[i + 1..] {
            if u.buffer != t.buffer || !(written || other_written) {
                continue;
            }
            let overlap = t.offset < u.offset + u.byte_len().max(4) && u.offset < t.offset + t.byte_len().max(4);
            if overlap {
                let w = if written { name } else { other };
                return Err(Error::input(
                    scope,
                    format!(
                        "{name} (bytes {}..{}) and {other} (bytes {}..{}) overlap in one buffer, and {w} is written",
                        t.offset,
                        t.offset + t.byte_len(),
                        u.offset,
                        u.offset + u.byte_len()
                    ),
                ));
            }
            shared = true;
        }
    }
    Ok(shared)
}

fn bind(ctx: &GpuContext, step: &Step, kernel: &Kernel, tensors: &[Option<&GpuTensor>]) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = step
        .sources
        .iter()
        .map(|(binding, source)| {
            let resource = match source {
                Binding::Owned(buffer) => buffer.as_entire_binding(),
                Binding::OwnedRange(buffer, range) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: range.first * 4,
                    size: wgpu::BufferSize::new(range.bytes()),
                }),
                Binding::Slot(slot, range) => {
                    let t = tensors[*slot].expect("checked slot");
                    let (start, size) = match range {
                        // A range counts the kernel's elements: 2 bytes for an
                        // `//#elements` binding of f16 or bf16, else 4 (words,
                        // whatever the tensor holds). Bindings are whole words;
                        // an odd tensor's padding is within its byte length.
                        Some(r) => {
                            let size = kernel.element_at(*binding).map_or(4, |(_, d)| d.size());
                            (t.offset + r.first * size, r.bytes_of(size))
                        }
                        None => (t.offset, t.byte_len().max(4)),
                    };
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &t.buffer,
                        offset: start,
                        size: wgpu::BufferSize::new(size),
                    })
                }
            };
            wgpu::BindGroupEntry { binding: *binding, resource }
        })
        .collect();
    ctx.count_bind_group();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&kernel.label), layout: &kernel.layout, entries: &entries })
}
