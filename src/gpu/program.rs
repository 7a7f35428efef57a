//! A recorded computation: the dispatches a plan makes, with bindings that
//! refer either to buffers the plan owns or to the caller's tensors, which
//! are only known when the program is recorded into an encoder.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, grid};
use crate::gpu::pipeline::Kernel;
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
    /// The bind groups of the last recording and the caller buffers they
    /// name: a training loop that records on the same buffers every step
    /// reuses them and creates no wgpu object after its first step.
    bound: Mutex<Option<(Vec<Option<(wgpu::Buffer, u64)>>, Vec<wgpu::BindGroup>)>>,
}

impl Program {
    pub fn new(name: &'static str, slots: Vec<SlotSpec>, steps: Vec<Step>) -> Self {
        Program { name, slots, steps, bound: Mutex::new(None) }
    }

    /// Checks the caller's tensors against the slots, then records every step.
    pub fn record(&self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, tensors: &[Option<&GpuTensor>]) -> Result<()> {
        self.check(ctx, tensors)?;
        let key: Vec<Option<(wgpu::Buffer, u64)>> = tensors.iter().map(|t| t.map(|t| (t.buffer.clone(), t.offset))).collect();
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if bound.as_ref().is_none_or(|(k, _)| *k != key) {
            *bound = Some((key, self.steps.iter().map(|s| bind(ctx, s, tensors)).collect()));
        }
        let groups = &bound.as_ref().expect("just bound").1;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("segloss"), timestamp_writes: None });
        for (step, group) in self.steps.iter().zip(groups) {
            pass.set_pipeline(&step.kernel.pipeline);
            pass.set_bind_group(0, group, &[]);
            let (x, y) = grid(step.groups);
            pass.dispatch_workgroups(x, y, 1);
        }
        Ok(())
    }

    /// Whether any step binds caller slot `slot`.
    fn binds(&self, slot: usize) -> bool {
        self.steps.iter().flat_map(|s| &s.sources).any(|(_, source)| matches!(source, Binding::Slot(i, _) if *i == slot))
    }

    fn check(&self, ctx: &GpuContext, tensors: &[Option<&GpuTensor>]) -> Result<()> {
        for (i, spec) in self.slots.iter().enumerate() {
            let Some(t) = tensors.get(i).copied().flatten() else {
                if spec.required {
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
                return Err(Error::input(self.name, format!("{} is {:?}; {:?} is expected", spec.name, t.dtype, spec.dtype)));
            }
            if t.offset % ctx.inner.offset_alignment != 0 || t.offset + t.byte_len() > t.buffer.size() {
                return Err(Error::input(self.name, format!("{} does not fit its buffer at an aligned offset", spec.name)));
            }
            if !t.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
                return Err(Error::input(self.name, format!("{}'s buffer lacks STORAGE usage", spec.name)));
            }
            // A buffer written by a dispatch may not be bound a second time in it.
            for (j, other) in self.slots.iter().enumerate() {
                if j != i && (spec.written || other.written) {
                    if let Some(u) = tensors.get(j).copied().flatten() {
                        if u.buffer == t.buffer {
                            return Err(Error::input(
                                self.name,
                                format!(
                                "{} and {} share one buffer, and {} is written: give it a buffer of its own",
                                spec.name,
                                other.name,
                                if spec.written { spec.name } else { other.name }
                            ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn bind(ctx: &GpuContext, step: &Step, tensors: &[Option<&GpuTensor>]) -> wgpu::BindGroup {
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
                        Some(r) => (t.offset + r.first * 4, r.bytes()),
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
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&step.kernel.label), layout: &step.kernel.layout, entries: &entries })
}
