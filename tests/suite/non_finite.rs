//! Non-finite inputs (README, "Decisions"): the host path (`Runner`, the
//! references) refuses a NaN or ±Inf in any f32 input, naming the tensor, the
//! index and the value; the engine path sets `STATUS_NON_FINITE` in the
//! plan's status word and writes a NaN value. Every loss, every f32 input it
//! takes, NaN, +Inf and −Inf.

use segloss::tools::engine::{EngineRun, record_compound_once, record_once};
use segloss::tools::samples;
use segloss::{CompoundConfig, Error, HostData, HostInputs, HostTensor, LossConfig, STATUS_NON_FINITE};

use crate::common::{config, ctx, runner};

/// (configuration, logits shape): every loss, reduced and with reduction "none".
const CASES: &[(&str, &[usize])] = &[
    (r#"{"loss": "bce", "params": {}}"#, &[2, 1, 6, 7]),
    (r#"{"loss": "bce", "params": {"reduction": "none", "pos_weight": 2.0}}"#, &[2, 2, 5, 5]),
    (r#"{"loss": "cross_entropy", "params": {}}"#, &[2, 3, 5, 6]),
    (r#"{"loss": "cross_entropy", "params": {"reduction": "none", "label_smoothing": 0.1}}"#, &[2, 3, 5, 6]),
    (r#"{"loss": "focal", "params": {"mode": "binary"}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#, &[2, 3, 5, 6]),
    (r#"{"loss": "dice", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "dice", "params": {"mode": "multilabel", "reduction": "none"}}"#, &[2, 2, 6, 6]),
    (r#"{"loss": "jaccard", "params": {"mode": "binary"}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "tversky", "params": {"alpha": 0.3, "beta": 0.7}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "generalized_dice", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "generalized_dice", "params": {"mode": "multilabel", "reduction": "none"}}"#, &[2, 2, 6, 6]),
    (r#"{"loss": "box_iou", "params": {"kind": "giou"}}"#, &[6, 4]),
    (r#"{"loss": "box_iou", "params": {"kind": "ciou", "reduction": "none"}}"#, &[6, 4]),
    (r#"{"loss": "mask_giou", "params": {}}"#, &[3, 8, 8]),
    (r#"{"loss": "mask_giou", "params": {"enclosing": "bounding_box", "reduction": "none"}}"#, &[3, 8, 8]),
    (r#"{"loss": "boundary", "params": {}}"#, &[2, 3, 8, 8]),
    (r#"{"loss": "boundary", "params": {"reduction": "none"}}"#, &[2, 3, 8, 8]),
    (r#"{"loss": "hausdorff_dt", "params": {}}"#, &[2, 3, 8, 8]),
    (r#"{"loss": "hausdorff_dt", "params": {"mode": "binary", "log": true, "reduction": "none"}}"#, &[2, 1, 8, 8]),
    (r#"{"loss": "mcc", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "mcc", "params": {"mode": "binary", "reduction": "none"}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "cl_dice", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "cl_dice", "params": {"mode": "multilabel", "alpha": 0.5, "reduction": "none"}}"#, &[2, 2, 6, 6]),
    (r#"{"loss": "hausdorff_er", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "hausdorff_er", "params": {"mode": "binary", "reduction": "none"}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "unified_focal", "params": {}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "unified_focal", "params": {"mode": "multiclass"}}"#, &[2, 2, 6, 6]),
    (r#"{"loss": "lovasz_softmax", "params": {}}"#, &[2, 3, 6, 6]),
    (r#"{"loss": "lovasz_hinge", "params": {}}"#, &[2, 1, 6, 6]),
    (r#"{"loss": "lovasz_hinge", "params": {"per_image": true}}"#, &[2, 1, 6, 6]),
];

const BAD: [f32; 3] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];

/// Finite inputs for a case: logits, target, and the optional f32 inputs the
/// loss takes (bce's weights; the target's maps for the losses that take them).
struct Case {
    config: LossConfig,
    logits: HostTensor,
    target: HostTensor,
    weight: Option<HostTensor>,
    distance: Option<HostTensor>,
}

impl Case {
    fn new(json: &str, shape: &[usize], seed: u64) -> Case {
        let config = config(json);
        let (logits, target) = samples::inputs(&config, shape, &mut samples::rng(seed)).unwrap();
        let weight = (config.name() == "bce").then(|| HostTensor::f32(shape, (0..logits.len()).map(|i| 0.5 + (i % 3) as f32).collect()).unwrap());
        let distance = config.takes_distance().then(|| {
            let r = config.reference(&HostInputs::new(&logits, &target)).unwrap();
            let (_, maps) = r.extras.iter().find(|(n, _)| *n == "distance").expect("the reference reports the maps");
            HostTensor::f32(shape, maps.iter().map(|&v| v as f32).collect()).unwrap()
        });
        Case { config, logits, target, weight, distance }
    }

    fn inputs(&self) -> HostInputs<'_> {
        HostInputs { logits: &self.logits, target: &self.target, weight: self.weight.as_ref(), distance: self.distance.as_ref() }
    }

    /// Every f32 input by the name errors give it, with a copy holding `bad` at
    /// element `k`: (name, index, the inputs with that copy in its place).
    fn poisoned(&self, bad: f32) -> Vec<(&'static str, usize, Case)> {
        let [logits_name, target_name] = self.config.input_names();
        let mut out = Vec::new();
        for (name, pick) in [(logits_name, 0), (target_name, 1), ("weight", 2), ("distance", 3)] {
            let tensor = [Some(&self.logits), Some(&self.target), self.weight.as_ref(), self.distance.as_ref()][pick];
            let Some(t) = tensor else { continue };
            let HostData::F32(data) = &t.data else { continue };
            // Near the end: the last channel, which every loss reads (hausdorff_dt and
            // boundary read only the kept or selected channels of the maps).
            let k = data.len() - 2;
            let mut data = data.clone();
            data[k] = bad;
            let copy = HostTensor::f32(&t.shape, data).unwrap();
            let mut case = Case {
                config: self.config.clone(),
                logits: self.logits.clone(),
                target: self.target.clone(),
                weight: self.weight.clone(),
                distance: self.distance.clone(),
            };
            match pick {
                0 => case.logits = copy,
                1 => case.target = copy,
                2 => case.weight = Some(copy),
                _ => case.distance = Some(copy),
            }
            out.push((name, k, case));
        }
        out
    }
}

fn assert_flagged(run: &EngineRun, what: &str, reduced: bool) {
    assert_ne!(run.status & STATUS_NON_FINITE, 0, "{what}: status {:#x} lacks STATUS_NON_FINITE", run.status);
    if reduced {
        assert!(run.value[0].is_nan(), "{what}: the value {} is not NaN", run.value[0]);
    } else {
        assert!(run.value.iter().any(|v| v.is_nan()), "{what}: no element of the value is NaN: {:?}", run.value);
    }
}

#[test]
fn the_host_path_refuses_a_non_finite_input_naming_it() {
    let mut checked = 0;
    for (i, (json, shape)) in CASES.iter().enumerate() {
        let clean = Case::new(json, shape, 900 + i as u64);
        for bad in BAD {
            for (name, k, case) in clean.poisoned(bad) {
                let needle = format!("{name}[{k}] = {bad} ");
                let what = format!("{json} with {needle}");
                let gpu = runner().compute(&case.config, case.inputs()).expect_err(&what);
                assert!(matches!(gpu, Error::Input { .. }) && gpu.to_string().contains(&needle), "{what}: Runner said {gpu}");
                let reference = case.config.reference(&case.inputs()).expect_err(&what).to_string();
                assert!(reference.contains(&needle) && reference.contains("not finite"), "{what}: the reference said {reference}");
                checked += 1;
            }
        }
    }
    // Every case has logits; 12 of them have f32 targets, 2 weights, 4 maps.
    assert!(checked >= CASES.len() * 3, "{checked}");
}

#[test]
fn the_engine_path_flags_a_non_finite_input_and_writes_nan() {
    for (i, (json, shape)) in CASES.iter().enumerate() {
        let clean = Case::new(json, shape, 900 + i as u64);
        let reduced = !json.contains(r#""none""#);
        // Finite inputs: no flag, a finite value (the oracle for the bit's meaning).
        let run = record_once(ctx(), &clean.config, &clean.inputs()).unwrap();
        assert_eq!(run.status & STATUS_NON_FINITE, 0, "{json}: finite inputs flagged");
        assert!(run.value.iter().all(|v| v.is_finite()), "{json}: finite inputs gave {:?}", run.value);
        for bad in BAD {
            for (name, k, case) in clean.poisoned(bad) {
                let run = record_once(ctx(), &case.config, &case.inputs()).unwrap();
                assert_flagged(&run, &format!("{json} with {name}[{k}] = {bad}"), reduced);
            }
        }
    }
}

/// The instances the issue found: generalized_dice returned 0.0 for NaN and
/// +Inf logits, lovasz_hinge dropped a NaN pixel, and multiclass focal gave
/// a finite value on the reference for a −Inf logit. Each is now an error on
/// the host and a NaN value on the engine path.
#[test]
fn no_loss_turns_a_non_finite_logit_into_a_finite_value() {
    for (json, shape, bad) in [
        (r#"{"loss": "generalized_dice", "params": {}}"#, &[2, 3, 6, 6][..], f32::NAN),
        (r#"{"loss": "generalized_dice", "params": {}}"#, &[2, 3, 6, 6], f32::INFINITY),
        (r#"{"loss": "lovasz_hinge", "params": {}}"#, &[2, 1, 6, 6], f32::NAN),
        (r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#, &[2, 3, 5, 6], f32::NEG_INFINITY),
    ] {
        let clean = Case::new(json, shape, 7);
        let (_, k, case) = clean.poisoned(bad).remove(0);
        let e = case.config.reference(&case.inputs()).expect_err(json).to_string();
        assert!(e.contains(&format!("logits[{k}] = {bad} ")), "{json}: {e}");
        assert_flagged(&record_once(ctx(), &case.config, &case.inputs()).unwrap(), json, true);
    }
}

/// A pixel whose label is ignored still has its logits checked, on both
/// paths, so that the two refuse the same inputs.
#[test]
fn an_ignored_pixel_is_checked_too() {
    for json in [
        r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#,
        r#"{"loss": "dice", "params": {"ignore_index": 255}}"#,
        r#"{"loss": "lovasz_softmax", "params": {"ignore_index": 255}}"#,
    ] {
        let mut case = Case::new(json, &[1, 3, 4, 5], 11);
        let HostData::I32(labels) = &mut case.target.data else { panic!("class targets") };
        labels[6] = 255;
        let HostData::F32(x) = &mut case.logits.data else { panic!("f32 logits") };
        x[20 + 6] = f32::NAN; // class 1 of pixel 6
        let e = case.config.reference(&case.inputs()).expect_err(json).to_string();
        assert!(e.contains("logits[26] = NaN "), "{json}: {e}");
        assert_flagged(&record_once(ctx(), &case.config, &case.inputs()).unwrap(), json, true);
    }
}

#[test]
fn a_compound_loss_refuses_and_flags_like_its_terms() {
    let dice = Case::new(r#"{"loss": "boundary", "params": {}}"#, &[2, 3, 8, 8], 5);
    let compound = CompoundConfig::new(vec![(1.0, config(r#"{"loss": "dice", "params": {}}"#)), (0.01, dice.config.clone())]).unwrap();
    for bad in BAD {
        for (name, k, case) in dice.poisoned(bad) {
            let what = format!("dice + 0.01·boundary with {name}[{k}] = {bad}");
            let e = runner().compute_compound(&compound, case.inputs()).expect_err(&what).to_string();
            assert!(e.contains(&format!("{name}[{k}] = {bad} ")), "{what}: {e}");
            let e = compound.reference(&case.inputs()).expect_err(&what).to_string();
            assert!(e.contains(&format!("{name}[{k}] = {bad} ")), "{what}: reference {e}");
            assert_flagged(&record_compound_once(ctx(), &compound, &case.inputs()).unwrap(), &what, true);
        }
    }
}
