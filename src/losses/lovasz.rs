//! `lovasz_softmax` and `lovasz_hinge` (Berman et al. 2018, SPEC.md): their
//! configuration types, validation, and one plan shared by both, which runs
//! `shaders/lovasz.wgsl` around the GPU sort (`primitives::sort`) and scan
//! (`primitives::scan`) — errors, sort, `lovasz_grad` from the scanned
//! labels, the value, and the gradient back through the permutation — all in
//! one recording, with no host round trip: which classes are present and
//! every mean are computed on the GPU. The float64 twins are in
//! `reference/lovasz.rs`.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::gpu::layout::WG_SIZE;
use crate::gpu::program::{Program, SlotSpec, Source, Step};
use crate::gpu::{DType, GpuContext, PooledBuffer};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, check_labels, class_layout};
use crate::primitives::reduce::{Place, record_segmented_sum};
use crate::primitives::scan::{ScanOperand, record_scan};
use crate::primitives::sort::record_sort;

/// Which classes `lovasz_softmax` averages over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LovaszClasses {
    /// Those with at least one (non-ignored) pixel in the group: `"present"`.
    #[default]
    Present,
    /// Every class: `"all"`.
    All,
    /// These class ids, each once: `[1, 3]`.
    List(Vec<i64>),
}

impl Serialize for LovaszClasses {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            LovaszClasses::Present => s.serialize_str("present"),
            LovaszClasses::All => s.serialize_str("all"),
            LovaszClasses::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LovaszClasses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let bad = || D::Error::custom("classes must be \"present\", \"all\" or a list of class ids");
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "present" => Ok(LovaszClasses::Present),
            serde_json::Value::String(s) if s == "all" => Ok(LovaszClasses::All),
            serde_json::Value::Array(items) => {
                items.iter().map(|v| v.as_i64().ok_or_else(bad)).collect::<std::result::Result<_, _>>().map(LovaszClasses::List)
            }
            _ => Err(bad()),
        }
    }
}

/// Parameters of `lovasz_softmax`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LovaszSoftmaxConfig {
    /// `"present"` (default), `"all"`, or a list of class ids.
    pub classes: LovaszClasses,
    /// Average over images of per-image losses, instead of one loss over the batch.
    pub per_image: bool,
    /// Pixels with this label take no part.
    pub ignore_index: Option<i64>,
}

/// Parameters of `lovasz_hinge`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LovaszHingeConfig {
    /// Average over images of per-image losses, instead of one loss over the batch.
    pub per_image: bool,
    /// Pixels with this label take no part.
    pub ignore_index: Option<i64>,
}

fn no_weight(loss: &'static str, shapes: &InputShapes) -> Result<()> {
    if shapes.weight.is_some() {
        return Err(Error::input(format!("{loss} takes no per-pixel weight")));
    }
    Ok(())
}

impl LovaszSoftmaxConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        crate::losses::check_ignore_index("lovasz_softmax", self.ignore_index)?;
        if let LovaszClasses::List(list) = &self.classes {
            if list.is_empty() {
                return Err(Error::config("lovasz_softmax", "classes is an empty list; name at least one class"));
            }
            if let Some(bad) = list.iter().find(|&&c| c < 0) {
                return Err(Error::config("lovasz_softmax", format!("classes lists {bad}; class ids are ≥ 0")));
            }
            if let Some(twice) = list.iter().enumerate().find(|(i, c)| list[..*i].contains(c)).map(|(_, c)| c) {
                return Err(Error::config("lovasz_softmax", format!("classes lists class {twice} more than once")));
            }
        }
        Ok(())
    }

    pub(crate) fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        no_weight("lovasz_softmax", shapes)?;
        let (_, c, _) = class_layout("lovasz_softmax", shapes)?;
        if let LovaszClasses::List(list) = &self.classes
            && let Some(bad) = list.iter().find(|&&k| k as usize >= c)
        {
            return Err(Error::input(format!("lovasz_softmax: classes lists {bad} but the logits have {c} classes")));
        }
        Ok(vec![1])
    }

    pub(crate) fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("lovasz_softmax", inputs.target, inputs.logits.shape[1], self.ignore_index)
    }

    pub(crate) fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        self.check_shapes(shapes)?;
        let (n, c, s) = class_layout("lovasz_softmax", shapes)?;
        let slot_classes: Vec<u32> = match &self.classes {
            LovaszClasses::List(list) => list.iter().map(|&k| k as u32).collect(),
            _ => (0..c as u32).collect(),
        };
        Lovasz {
            loss: "lovasz_softmax",
            shapes,
            images: n as u64,
            classes: c as u64,
            spatial: s as u64,
            slot_classes,
            per_image: self.per_image,
            ignore_index: self.ignore_index,
            present: self.classes == LovaszClasses::Present,
            hinge: false,
        }
        .plan(ctx, options)
    }
}

impl LovaszHingeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        crate::losses::check_ignore_index("lovasz_hinge", self.ignore_index)
    }

    /// Logits `[N, S…]` or `[N, 1, S…]`, labels `[N, S…]`.
    pub(crate) fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        no_weight("lovasz_hinge", shapes)?;
        let (l, t) = (&shapes.logits, &shapes.target);
        let with_channel: Vec<usize> = t.iter().take(1).chain(std::iter::once(&1)).chain(t.iter().skip(1)).copied().collect();
        if t.is_empty() || (l != t && *l != with_channel) {
            return Err(Error::input(format!(
                "lovasz_hinge: logits {l:?} and target {t:?} must be [N, S…] and [N, S…], or [N, 1, S…] and [N, S…]"
            )));
        }
        if t.contains(&0) {
            return Err(Error::input(format!("lovasz_hinge: target {t:?} has an empty axis")));
        }
        Ok(vec![1])
    }

    pub(crate) fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("lovasz_hinge", inputs.target, 2, self.ignore_index)
    }

    pub(crate) fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        self.check_shapes(shapes)?;
        let n = shapes.target[0] as u64;
        let pixels: u64 = shapes.target.iter().map(|&d| d as u64).product();
        Lovasz {
            loss: "lovasz_hinge",
            shapes,
            images: n,
            classes: 1,
            spatial: pixels / n,
            slot_classes: vec![0],
            per_image: self.per_image,
            ignore_index: self.ignore_index,
            present: false,
            hinge: true,
        }
        .plan(ctx, options)
    }
}

/// `struct Params` in `lovasz.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    pixels: u32,
    spatial: u32,
    classes: u32,
    label_classes: u32,
    slots: u32,
    groups: u32,
    seg_len: u32,
    seg_tiles: u32,
    ignore_index: i32,
    has_ignore: u32,
    present: u32,
    hinge: u32,
}

/// Positions one workgroup of the segment kernels covers (`SEG_TILE`).
const SEG_TILE: u64 = 2048;
/// Loop iterations lavapipe allows one invocation, with a margin.
const LOOP_BUDGET: u64 = 60_000;

/// Either Lovász loss, as the shared planner sees it.
struct Lovasz<'a> {
    loss: &'static str,
    shapes: &'a InputShapes,
    images: u64,
    classes: u64,
    spatial: u64,
    /// The class of each slot (segment within a group).
    slot_classes: Vec<u32>,
    per_image: bool,
    ignore_index: Option<i64>,
    present: bool,
    hinge: bool,
}

impl Lovasz<'_> {
    fn plan(&self, ctx: &GpuContext, options: PlanOptions) -> Result<LossPlan> {
        let loss = self.loss;
        let pixels = self.images * self.spatial;
        let groups = if self.per_image { self.images } else { 1 };
        let seg_len = pixels / groups;
        let slots = self.slot_classes.len() as u64;
        let segments = groups * slots;
        let limit = ctx.binding_limit();
        let logit_bytes = pixels * self.classes * 4;
        if logit_bytes > limit || segments * seg_len * 4 > limit {
            return Err(Error::Limit(format!(
                "{loss}: {} MiB of logits and {segments} sort segments of {seg_len} pixels ({} MiB of keys) must each fit one \
                 {} MiB binding; split the batch",
                logit_bytes >> 20,
                (segments * seg_len * 4) >> 20,
                limit >> 20
            )));
        }
        if groups.div_ceil(WG_SIZE) * (2 * slots + 1) > LOOP_BUDGET {
            return Err(Error::Limit(format!("{loss}: {groups} images × {slots} classes exceed what one finalizing workgroup may loop over")));
        }
        let seg_tiles = seg_len.div_ceil(SEG_TILE);
        let seg_groups = segments * seg_tiles;
        let pixel_groups = pixels.div_ceil(WG_SIZE);
        if seg_groups > u32::MAX as u64 {
            return Err(Error::Limit(format!("{loss}: {seg_groups} workgroups exceed 2^32")));
        }

        let storage = wgpu::BufferUsages::STORAGE;
        let owned = |label: &str, bytes: &[u8], usage| ctx.create_buffer_with(label, bytes, usage);
        let params = Params {
            pixels: pixels as u32,
            spatial: self.spatial as u32,
            classes: self.classes as u32,
            label_classes: if self.hinge { 2 } else { self.classes as u32 },
            slots: slots as u32,
            groups: groups as u32,
            seg_len: seg_len as u32,
            seg_tiles: seg_tiles as u32,
            ignore_index: self.ignore_index.unwrap_or(0) as i32,
            has_ignore: self.ignore_index.is_some() as u32,
            present: self.present as u32,
            hinge: self.hinge as u32,
        };
        let params = owned("lovasz params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
        let io = owned("loss io", bytemuck::bytes_of(&options.io()), wgpu::BufferUsages::UNIFORM);
        let status = owned("loss status", &[0u8; 4], storage | wgpu::BufferUsages::COPY_SRC);
        let mut class_slot = vec![-1i32; self.classes as usize];
        for (k, &c) in self.slot_classes.iter().enumerate() {
            class_slot[c as usize] = k as i32;
        }
        let slot_class = owned("lovasz slot classes", bytemuck::cast_slice(&self.slot_classes), storage);
        let class_slot = owned("lovasz class slots", bytemuck::cast_slice(&class_slot), storage);

        let mut scratch: Vec<PooledBuffer> = Vec::new();
        let mut take = |label: &str, bytes: u64| {
            let b = ctx.scratch(label, bytes, storage)?;
            let buffer = b.buffer().clone();
            scratch.push(b);
            Ok::<_, Error>(buffer)
        };
        let keys = take("lovasz keys", segments * seg_len * 4)?;
        let values = take("lovasz values", segments * seg_len * 4)?;
        let cum_fg = take("lovasz foreground counts", segments * seg_len * 4)?;
        let totals = take("lovasz foreground totals", segments * 4)?;
        let partials = take("lovasz partials", seg_groups * 4)?;
        let seg_loss = take("lovasz segment losses", segments * 4)?;
        let weights = take("lovasz segment weights", segments * 4)?;

        let kernel = |entry| ctx.kernel("lovasz.wgsl", entry, &[]);
        let own = |b: &wgpu::Buffer| Source::Owned(b.clone());
        let mut steps = vec![Step {
            kernel: kernel(if self.hinge { "errors_hinge" } else { "errors_softmax" })?,
            sources: {
                let mut s = vec![
                    (0, own(&params)),
                    (2, Source::Slot(slot::LOGITS, None)),
                    (3, Source::Slot(slot::TARGET, None)),
                    (6, own(&keys)),
                    (7, own(&values)),
                    (16, own(&status)),
                ];
                if !self.hinge {
                    s.push((4, own(&slot_class)));
                }
                s
            },
            groups: pixel_groups as u32,
        }];
        let lengths = vec![seg_len; segments as usize];
        record_sort(ctx, &mut steps, Place::Owned(keys.clone()), Place::Owned(values.clone()), &lengths, false)?;
        scratch.extend(record_scan(
            ctx,
            &mut steps,
            Place::Owned(values.clone()),
            Place::Owned(cum_fg.clone()),
            Some(Place::Owned(totals.clone())),
            (segments, seg_len),
            ScanOperand::LowBit,
        )?);
        steps.push(Step {
            kernel: kernel("contributions")?,
            sources: vec![
                (0, own(&params)),
                (6, own(&keys)),
                (7, own(&values)),
                (8, own(&cum_fg)),
                (9, own(&totals)),
                (10, own(&partials)),
            ],
            groups: seg_groups as u32,
        });
        scratch.extend(record_segmented_sum(ctx, &mut steps, Place::Owned(partials.clone()), segments, seg_tiles, Place::Owned(seg_loss.clone()))?);
        steps.push(Step {
            kernel: kernel("finalize")?,
            sources: vec![
                (0, own(&params)),
                (1, own(&io)),
                (9, own(&totals)),
                (11, own(&seg_loss)),
                (12, own(&weights)),
                (13, Source::Slot(slot::VALUE, None)),
            ],
            groups: 1,
        });
        if options.grad {
            // ∂loss/∂e lands in the keys' buffer, free once the contributions are summed.
            steps.push(Step {
                kernel: kernel("scatter")?,
                sources: vec![
                    (0, own(&params)),
                    (7, own(&values)),
                    (8, own(&cum_fg)),
                    (9, own(&totals)),
                    (12, own(&weights)),
                    (14, own(&keys)),
                ],
                groups: seg_groups as u32,
            });
            let mut sources = vec![
                (0, own(&params)),
                (1, own(&io)),
                (2, Source::Slot(slot::LOGITS, None)),
                (3, Source::Slot(slot::TARGET, None)),
                (14, own(&keys)),
                (15, Source::Slot(slot::GRAD, None)),
                (16, own(&status)),
            ];
            if !self.hinge {
                sources.extend([(4, own(&slot_class)), (5, own(&class_slot))]);
            }
            steps.push(Step {
                kernel: kernel(if self.hinge { "backward_hinge" } else { "backward_softmax" })?,
                sources,
                groups: pixel_groups as u32,
            });
        }

        let logits_shape = self.shapes.logits.clone();
        let slots = vec![
            SlotSpec { name: "logits", shape: logits_shape.clone(), dtype: DType::F32, written: false, required: true },
            SlotSpec { name: "target", shape: self.shapes.target.clone(), dtype: DType::I32, written: false, required: true },
            SlotSpec { name: "weight (which this loss does not take)", shape: vec![], dtype: DType::F32, written: false, required: false },
            SlotSpec { name: "grad", shape: logits_shape, dtype: DType::F32, written: true, required: options.grad },
            SlotSpec { name: "value", shape: vec![1], dtype: DType::F32, written: true, required: true },
        ];
        Ok(LossPlan {
            ctx: ctx.clone(),
            program: Program::new(slots, steps),
            io,
            status: Some(status),
            value_shape: vec![1],
            options,
            optional: None,
            _scratch: scratch,
            extras: Vec::new(),
        })
    }
}
