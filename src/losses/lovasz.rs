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

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::layout::WG_SIZE;
use crate::gpu::context::GpuContext;
use crate::gpu::program::Binding;
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::gpu::chunks::PixelLayout;
use crate::losses::checks::{check_ignore_index, check_labels, class_layout};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, TargetKind};
use crate::primitives::scan::{ScanOperand, record_scan};
use crate::primitives::sort::{SortJob, SortOptions, record_sort};

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
        return Err(Error::shape(loss, "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no per-pixel weight"));
    }
    Ok(())
}

impl Loss for LovaszSoftmaxConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = "lovasz_softmax";

    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes
    }

    fn sharding(&self) -> Sharding {
        lovasz_sharding(self.per_image)
    }

    fn validate(&self) -> Result<()> {
        check_ignore_index("lovasz_softmax", self.ignore_index)?;
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

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        no_weight("lovasz_softmax", shapes)?;
        let (n, c, s) = class_layout("lovasz_softmax", shapes)?;
        if let LovaszClasses::List(list) = &self.classes
            && let Some(bad) = list.iter().find(|&&k| k as usize >= c)
        {
            return Err(Error::input("lovasz_softmax", format!("classes lists {bad} but the logits have {c} classes")));
        }
        Ok(Checked { layout: PixelLayout::new(n, c, s), value_shape: vec![1] })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("lovasz_softmax", inputs.target, inputs.logits.shape[1], self.ignore_index)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let layout = checked.layout;
        let slot_classes: Vec<u32> = match &self.classes {
            LovaszClasses::List(list) => list.iter().map(|&k| k as u32).collect(),
            _ => (0..layout.classes as u32).collect(),
        };
        Lovasz {
            loss: "lovasz_softmax",
            shapes,
            layout,
            slot_classes,
            per_image: self.per_image,
            ignore_index: self.ignore_index,
            present: self.classes == LovaszClasses::Present,
            hinge: false,
            sort_positive_only: false,
        }
        .plan(ctx, options)
    }
}

impl Loss for LovaszHingeConfig {
    /// `[N, 1, S]`.
    type Layout = PixelLayout;

    const NAME: &'static str = "lovasz_hinge";

    /// The hinge's labels are classes 0 and 1 (logits `[N, 1, S…]`).
    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes
    }

    fn sharding(&self) -> Sharding {
        lovasz_sharding(self.per_image)
    }

    fn validate(&self) -> Result<()> {
        check_ignore_index("lovasz_hinge", self.ignore_index)
    }

    /// Logits `[N, S…]` or `[N, 1, S…]`, labels `[N, S…]`.
    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        no_weight("lovasz_hinge", shapes)?;
        let (l, t) = (&shapes.logits, &shapes.target);
        let with_channel: Vec<usize> = t.iter().take(1).chain(std::iter::once(&1)).chain(t.iter().skip(1)).copied().collect();
        if t.is_empty() || (l != t && *l != with_channel) {
            return Err(Error::shape("lovasz_hinge", "logits", l, format!(
                "logits {l:?} and target {t:?} must be [N, S…] and [N, S…], or [N, 1, S…] and [N, S…]"
            )));
        }
        if t.contains(&0) {
            return Err(Error::shape("lovasz_hinge", "target", t, format!("target {t:?} has an empty axis")));
        }
        let n = t[0];
        Ok(Checked { layout: PixelLayout::new(n, 1, t.iter().product::<usize>() / n), value_shape: vec![1] })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("lovasz_hinge", inputs.target, 2, self.ignore_index)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        Lovasz {
            loss: "lovasz_hinge",
            shapes,
            layout: checked.layout,
            slot_classes: vec![0],
            per_image: self.per_image,
            ignore_index: self.ignore_index,
            present: false,
            hinge: true,
            sort_positive_only: true,
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
    layout: PixelLayout,
    /// The class of each slot (segment within a group).
    slot_classes: Vec<u32>,
    per_image: bool,
    ignore_index: Option<i64>,
    present: bool,
    hinge: bool,
    /// The hinge's shortcut: sort only the errors > 0 (see `lovasz.wgsl`);
    /// off only to test it against the full sort.
    sort_positive_only: bool,
}

impl Lovasz<'_> {
    fn plan(&self, ctx: &GpuContext, options: PlanOptions) -> Result<LossPlan> {
        let loss = self.loss;
        let PixelLayout { images, classes, spatial } = self.layout;
        let pixels = images * spatial;
        let groups = if self.per_image { images } else { 1 };
        let seg_len = pixels / groups;
        let slots = self.slot_classes.len() as u64;
        let segments = groups * slots;
        let limit = ctx.binding_limit();
        let logit_bytes = pixels * classes * 4;
        if logit_bytes > limit || segments * seg_len * 4 > limit {
            return Err(Error::limit(loss, format!(
                "{} MiB of logits and {segments} sort segments of {seg_len} pixels ({} MiB of keys) must each fit one \
                 {} MiB binding; split the batch",
                logit_bytes >> 20,
                (segments * seg_len * 4) >> 20,
                limit >> 20
            )));
        }
        if groups.div_ceil(WG_SIZE) * (2 * slots + 1) > LOOP_BUDGET {
            return Err(Error::limit(loss, format!("{groups} images × {slots} classes exceed what one finalizing workgroup may loop over")));
        }
        let seg_tiles = seg_len.div_ceil(SEG_TILE);
        let seg_groups = segments * seg_tiles;
        let pixel_groups = pixels.div_ceil(WG_SIZE);
        if seg_groups > u32::MAX as u64 {
            return Err(Error::limit(loss, format!("{seg_groups} workgroups exceed 2^32")));
        }

        let params = Params {
            pixels: pixels as u32,
            spatial: spatial as u32,
            classes: classes as u32,
            label_classes: if self.hinge { 2 } else { classes as u32 },
            slots: slots as u32,
            groups: groups as u32,
            seg_len: seg_len as u32,
            seg_tiles: seg_tiles as u32,
            ignore_index: self.ignore_index.unwrap_or(0) as i32,
            has_ignore: self.ignore_index.is_some() as u32,
            present: self.present as u32,
            hinge: self.hinge as u32,
        };
        let mut plan = PlanBuilder::new(loss, ctx, options, self.shapes, DType::I32);
        let params = plan.uniform("lovasz params", &params);
        let (io, status) = (plan.io(), plan.status());
        let mut class_slot = vec![-1i32; classes as usize];
        for (k, &c) in self.slot_classes.iter().enumerate() {
            class_slot[c as usize] = k as i32;
        }
        let slot_class = Binding::Owned(plan.storage("lovasz slot classes", bytemuck::cast_slice(&self.slot_classes)));
        let class_slot = Binding::Owned(plan.storage("lovasz class slots", bytemuck::cast_slice(&class_slot)));
        let own = Binding::owned;
        let keys = plan.scratch("lovasz keys", segments * seg_len * 4)?;
        let values = plan.scratch("lovasz values", segments * seg_len * 4)?;
        let cum_fg = plan.scratch("lovasz foreground counts", segments * seg_len * 4)?;
        let totals = plan.scratch("lovasz foreground totals", segments * 4)?;
        let partials = plan.scratch("lovasz partials", seg_groups * 4)?;
        let seg_loss = plan.scratch("lovasz segment losses", segments * 4)?;
        let weights = plan.scratch("lovasz segment weights", segments * 4)?;

        let kernel = |entry| ctx.kernel("lovasz.wgsl", entry, &[]);
        let mut errors = vec![
            ("params", params.clone()),
            ("logits", Binding::slot(slot::LOGITS)),
            ("labels", Binding::slot(slot::TARGET)),
            ("keys", own(&keys)),
            ("values", own(&values)),
            ("status", status.clone()),
        ];
        if !self.hinge {
            errors.push(("slot_class", slot_class.clone()));
        }
        let lengths = vec![seg_len; segments as usize];
        let mut job = SortJob { lengths: &lengths, index_values: false, options: SortOptions::default(), dynamic: None };
        if self.sort_positive_only {
            // cum_fg holds the flags until the foreground scan below needs it.
            let ranks = plan.scratch("lovasz sorted ranks", segments * seg_len * 4)?;
            let positives = plan.scratch("lovasz sorted counts", segments * 4)?;
            plan.dispatch(
                &kernel("hinge_flags")?,
                pixel_groups as u32,
                vec![
                    ("params", params.clone()),
                    ("logits", Binding::slot(slot::LOGITS)),
                    ("labels", Binding::slot(slot::TARGET)),
                    ("flags", own(&cum_fg)),
                    ("status", status.clone()),
                ],
            )?;
            let scratch = record_scan(
                ctx,
                plan.steps_mut(),
                own(&cum_fg),
                own(&ranks),
                Some(own(&positives)),
                (segments, seg_len),
                ScanOperand::Value,
            )?;
            plan.keep(scratch);
            errors.extend([("ranks", own(&ranks)), ("positives", own(&positives))]);
            plan.dispatch(&kernel("errors_hinge_partitioned")?, pixel_groups as u32, errors)?;
            job.dynamic = Some(own(&positives));
        } else {
            plan.dispatch(&kernel(if self.hinge { "errors_hinge" } else { "errors_softmax" })?, pixel_groups as u32, errors)?;
        }
        let sorted = record_sort(ctx, plan.steps_mut(), own(&keys), own(&values), job)?;
        plan.keep(sorted.scratch);
        let scan_scratch = record_scan(
            ctx,
            plan.steps_mut(),
            own(&values),
            own(&cum_fg),
            Some(own(&totals)),
            (segments, seg_len),
            ScanOperand::LowBit,
        )?;
        plan.keep(scan_scratch);
        plan.dispatch(
            &kernel("contributions")?,
            seg_groups as u32,
            vec![
                ("params", params.clone()),
                ("keys", own(&keys)),
                ("values", own(&values)),
                ("cs", own(&cum_fg)),
                ("totals", own(&totals)),
                ("partials", own(&partials)),
            ],
        )?;
        plan.segmented_sum(own(&partials), segments, seg_tiles, own(&seg_loss))?;
        plan.dispatch(
            &kernel("finalize")?,
            1,
            vec![
                ("params", params.clone()),
                ("io", io.clone()),
                ("totals", own(&totals)),
                ("seg_loss", own(&seg_loss)),
                ("weights", own(&weights)),
                ("value", Binding::slot(slot::VALUE)),
                ("status", status.clone()),
            ],
        )?;
        if options.grad {
            // ∂loss/∂e lands in the keys' buffer, free once the contributions are summed.
            plan.dispatch(
                &kernel("scatter")?,
                seg_groups as u32,
                vec![
                    ("params", params.clone()),
                    ("values", own(&values)),
                    ("cs", own(&cum_fg)),
                    ("totals", own(&totals)),
                    ("weights", own(&weights)),
                    ("grad_e", own(&keys)),
                ],
            )?;
            let mut backward = vec![
                ("params", params),
                ("io", io),
                ("logits", Binding::slot(slot::LOGITS)),
                ("labels", Binding::slot(slot::TARGET)),
                ("grad_e", own(&keys)),
                ("grad", Binding::slot(slot::GRAD)),
                ("status", status),
            ];
            if !self.hinge {
                backward.extend([("slot_class", slot_class), ("class_slot", class_slot)]);
            }
            plan.dispatch(&kernel(if self.hinge { "backward_hinge" } else { "backward_softmax" })?, pixel_groups as u32, backward)?;
        }
        Ok(plan.finish(vec![1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::tensor::{GpuTensor, HostTensor};
    use crate::losses::{InputShapes, LossInputs, LossOutputs};
    use rand::{Rng, SeedableRng};

    /// Value and gradient bits of the hinge on `logits` and `labels` (`[N, S]`).
    fn hinge_bits(ctx: &GpuContext, config: &LovaszHingeConfig, sort_positive_only: bool, logits: &HostTensor, labels: &HostTensor) -> (u32, Vec<u32>) {
        let shapes = InputShapes::new(&logits.shape, &labels.shape);
        let checked = config.check_shapes(&shapes).unwrap();
        let lovasz = Lovasz {
            loss: "lovasz_hinge",
            shapes: &shapes,
            layout: checked.layout,
            slot_classes: vec![0],
            per_image: config.per_image,
            ignore_index: config.ignore_index,
            present: false,
            hinge: true,
            sort_positive_only,
        };
        let plan = lovasz.plan(ctx, PlanOptions::default()).unwrap();
        let (x, y) = (GpuTensor::from_host(ctx, logits).unwrap(), GpuTensor::from_host(ctx, labels).unwrap());
        let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
        let grad = GpuTensor::zeros(ctx, &logits.shape, DType::F32).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&value, &grad)).unwrap();
        ctx.queue().submit([encoder.finish()]);
        let bits = |t: &GpuTensor| t.read_f32(ctx).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(&value)[0], bits(&grad))
    }

    #[test]
    fn the_hinge_sorting_only_positive_errors_matches_the_full_sort_bit_for_bit() {
        let ctx = GpuContext::new().expect("GPU tests need an adapter");
        let mut r = rand::rngs::StdRng::seed_from_u64(300);
        // Logits on a coarse grid: errors tie, and many are exactly 0 (x = ±1).
        let shape = [3, 70, 71];
        let n: usize = shape.iter().product();
        let grid = [-2.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0];
        let mut coarse: Vec<f32> = (0..n).map(|_| grid[r.random_range(0..grid.len())]).collect();
        let fine: Vec<f32> = (0..n).map(|_| r.random::<f32>() * 6.0 - 3.0).collect();
        coarse[17] = -0.0;
        for (i, logits) in [coarse, fine].into_iter().enumerate() {
            let x = HostTensor::f32(&shape, logits).unwrap();
            let y = HostTensor::i32(&shape, (0..n).map(|_| if r.random::<f32>() < 0.1 { 255 } else { r.random_range(0..2) }).collect()).unwrap();
            for per_image in [false, true] {
                let config = LovaszHingeConfig { per_image, ignore_index: Some(255) };
                let full = hinge_bits(&ctx, &config, false, &x, &y);
                let shortcut = hinge_bits(&ctx, &config, true, &x, &y);
                assert_eq!(full.0, shortcut.0, "inputs {i}, per_image {per_image}: value");
                assert!(full.1 == shortcut.1, "inputs {i}, per_image {per_image}: gradient bits differ");
                assert!(full.1.iter().any(|&g| g != 0), "inputs {i}: an all-zero gradient proves nothing");
            }
        }
    }
}

/// Per image, a Lovász loss is a mean over images and splits; over the
/// whole batch it sorts every pixel of the batch together, which no sum of
/// per-device statistics can stand for.
fn lovasz_sharding(per_image: bool) -> Sharding {
    if per_image {
        Sharding::Mean { log: false }
    } else {
        Sharding::Unsplittable("per_image = false sorts the errors of the whole batch at once; per_image = true splits")
    }
}
