//! Golden cases: every case of an implemented loss passes on the float64
//! reference and on the GPU. The cases are copied into tests/golden so a
//! clone is self-contained; $SEGLOSS_GOLDEN_DIR points elsewhere.

use std::path::PathBuf;

use segloss::golden::{GoldenCase, Outcome, case_files, check_case};
use segloss::LossConfig;

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
