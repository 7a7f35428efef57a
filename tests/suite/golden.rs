//! Golden cases: every case of an implemented loss passes on the float64
//! reference and on the GPU. The cases are copied into tests/golden so a
//! clone is self-contained; $SEGLOSS_GOLDEN_DIR points elsewhere.

use std::path::PathBuf;

use segloss::golden::{GoldenCase, Outcome, case_files, check_case, compare};
use segloss::{HostInputs, HostTensor, LossConfig};

use crate::common::runner;

/// The folder of golden cases: $SEGLOSS_GOLDEN_DIR, else tests/golden.
pub fn golden_dir() -> PathBuf {
    std::env::var_os("SEGLOSS_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden"))
}

fn check_loss(loss: &str) {
    let mut ran = 0;
    for file in case_files(&golden_dir()).unwrap() {
        let case = GoldenCase::load(&file).unwrap();
        if case.loss != loss {
            continue;
        }
        assert!(LossConfig::implemented(loss));
        match check_case(&case, Some(runner())).unwrap() {
            Outcome::Pass { gpu, .. } => assert!(gpu.is_some()),
            other => panic!("{}: {other:?}", case.id),
        }
        ran += 1;
    }
    assert!(ran > 0, "no golden case of {loss} in {}", golden_dir().display());
}

#[test]
fn bce_cases_pass() {
    check_loss("bce");
}

#[test]
fn cross_entropy_cases_pass() {
    check_loss("cross_entropy");
}

#[test]
fn focal_cases_pass() {
    check_loss("focal");
}

#[test]
fn lovasz_softmax_cases_pass() {
    check_loss("lovasz_softmax");
}

#[test]
fn lovasz_hinge_cases_pass() {
    check_loss("lovasz_hinge");
}

#[test]
fn dice_cases_pass() {
    check_loss("dice");
}

#[test]
fn jaccard_cases_pass() {
    check_loss("jaccard");
}

#[test]
fn tversky_cases_pass() {
    check_loss("tversky");
}

#[test]
fn generalized_dice_cases_pass() {
    check_loss("generalized_dice");
}

#[test]
fn box_iou_cases_pass() {
    check_loss("box_iou");
}

#[test]
fn mask_giou_cases_pass() {
    check_loss("mask_giou");
}

#[test]
fn boundary_cases_pass() {
    check_loss("boundary");
}

#[test]
fn hausdorff_dt_cases_pass() {
    check_loss("hausdorff_dt");
}

#[test]
fn mcc_cases_pass() {
    check_loss("mcc");
}

#[test]
fn cl_dice_cases_pass() {
    check_loss("cl_dice");
}

#[test]
fn hausdorff_er_cases_pass() {
    check_loss("hausdorff_er");
}

#[test]
fn unified_focal_cases_pass() {
    check_loss("unified_focal");
}

/// The first golden case of `loss`.
fn first_case(loss: &str) -> GoldenCase {
    case_files(&golden_dir())
        .unwrap()
        .into_iter()
        .map(|f| GoldenCase::load(&f).unwrap())
        .find(|c| c.loss == loss)
        .unwrap_or_else(|| panic!("no {loss} case"))
}

#[test]
fn expected_distances_are_compared() {
    // A wrong expected map fails the case on the reference and on the GPU.
    let mut case = first_case("boundary");
    let data = case.expected["distance"]["data"].as_array_mut().unwrap();
    let last = data.len() - 1;
    data[last] = serde_json::json!(data[last].as_f64().unwrap() + 0.01);
    for runner in [None, Some(runner())] {
        match check_case(&case, runner).unwrap() {
            Outcome::Fail(why) => assert!(why.contains(&format!("distance[{last}]")), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    // An expected output this build does not produce fails rather than passing unchecked.
    let mut case = first_case("boundary");
    case.expected["enclosing_count"] = serde_json::json!({"shape": [1], "dtype": "i64", "data": [3]});
    match check_case(&case, None).unwrap() {
        Outcome::Fail(why) => assert!(why.contains("expected.enclosing_count"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Value and gradient of `case` with `maps` as its distance input, on the
/// reference and on the GPU, held to the case's own (GPU) tolerance: the
/// maps are f32 as every input is, so the f64 golden maps come in rounded,
/// beyond the reference's 1e-8 but far within the tolerance.
fn within_tolerance_with_maps(case: &GoldenCase, maps: &HostTensor) -> bool {
    let config = LossConfig::from_parts(&case.loss, case.params.clone()).unwrap();
    let (logits, target) = (case.input("logits").unwrap().unwrap(), case.input("target").unwrap().unwrap());
    let inputs = HostInputs::new(&logits, &target).with_distance(maps);
    let r = config.reference(&inputs).unwrap();
    let gpu = runner().compute(&config, inputs).unwrap();
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let (loss, grad) = (case.expected_loss().unwrap(), case.expected_grad().unwrap());
    let t = case.tolerance;
    [
        compare("loss", &r.value, &loss, t.rtol, t.atol, false),
        compare("grad", &r.grad, &grad, t.rtol, t.atol, true),
        compare("loss", &widen(&gpu.value), &loss, t.rtol, t.atol, false),
        compare("grad", &widen(&gpu.grad), &grad, t.rtol, t.atol, true),
    ]
    .iter()
    .all(|m| m.ratio <= 1.0)
}

/// `distance` is an input of the golden format for `boundary`: the case's
/// expected maps, given back, reproduce its loss and gradient on both paths;
/// halved, they do not (they are read); and check_case checks them like
/// every other input.
#[test]
fn distance_maps_are_an_input_of_boundary_cases() {
    let case = first_case("boundary");
    let maps: segloss::golden::JsonTensor = serde_json::from_value(case.expected["distance"].clone()).unwrap();
    let tensor = HostTensor::f32(&maps.shape, maps.data.iter().map(|&v| v as f32).collect()).unwrap();
    assert!(within_tolerance_with_maps(&case, &tensor));
    let halved = HostTensor::f32(&maps.shape, maps.data.iter().map(|&v| 0.5 * v as f32).collect()).unwrap();
    assert!(!within_tolerance_with_maps(&case, &halved), "halved maps passed: they are not read");
    // Through check_case: read (halved maps fail the case) and checked (an infinite one is refused by name).
    let mut given = case.clone();
    given.inputs.insert("distance".into(), segloss::golden::JsonTensor { data: maps.data.iter().map(|v| v * 0.5).collect(), ..maps.clone() });
    assert!(matches!(check_case(&given, None).unwrap(), Outcome::Fail(ref why) if why.starts_with("reference loss")));
    let k = maps.data.len() / 3;
    given.inputs.get_mut("distance").unwrap().data[k] = f64::INFINITY;
    let e = check_case(&given, None).expect_err("an infinite map").to_string();
    assert!(e.contains(&format!("distance[{k}] = inf ")), "{e}");
}

/// hausdorff_dt's target fields as the `distance` input: the fields the
/// reference computes from the target, given back, reproduce the case; zero
/// fields do not.
#[test]
fn distance_maps_are_an_input_of_hausdorff_dt_cases() {
    let case = first_case("hausdorff_dt");
    let config = LossConfig::from_parts(&case.loss, case.params.clone()).unwrap();
    let (logits, target) = (case.input("logits").unwrap().unwrap(), case.input("target").unwrap().unwrap());
    let r = config.reference(&HostInputs::new(&logits, &target)).unwrap();
    let (_, fields) = r.extras.iter().find(|(n, _)| *n == "distance").unwrap();
    let tensor = HostTensor::f32(&logits.shape, fields.iter().map(|&v| v as f32).collect()).unwrap();
    assert!(within_tolerance_with_maps(&case, &tensor));
    let zero = HostTensor::f32(&logits.shape, vec![0.0; fields.len()]).unwrap();
    assert!(!within_tolerance_with_maps(&case, &zero), "zero fields passed: they are not read");
}

/// An input name the loss does not take is refused, not run unread.
#[test]
fn an_unknown_input_is_refused() {
    for (loss, name) in [("boundary", "distances"), ("dice", "distance"), ("cross_entropy", "weights")] {
        let mut case = first_case(loss);
        let logits = case.inputs["logits"].clone();
        case.inputs.insert(name.into(), logits);
        let e = check_case(&case, None).expect_err(name).to_string();
        assert!(e.contains(&format!("unknown input \"{name}\"")), "{loss}: {e}");
    }
}

/// A class index that is not an integer is refused, naming it: never truncated.
#[test]
fn a_fractional_label_is_refused() {
    let mut case = first_case("cross_entropy");
    case.inputs.get_mut("target").unwrap().data[3] = 1.5;
    let e = check_case(&case, None).expect_err("1.5").to_string();
    assert!(e.contains("target[3] = 1.5 is not an integer"), "{e}");
}

/// A case file with a NaN token says that NaN is not JSON, and where.
#[test]
fn a_nan_token_in_a_case_file_is_named() {
    let dir = std::env::temp_dir().join(format!("segloss-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bce-nan.json");
    std::fs::write(&path, "{\"id\": \"bce-x\",\n \"loss\": \"bce\", \"inputs\": {\"logits\": {\"shape\": [1], \"dtype\": \"f32\", \"data\": [NaN]}}}").unwrap();
    let e = GoldenCase::load(&path).expect_err("NaN").to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(e.contains("NaN at line 2 column 78 is not JSON"), "{e}");
}
