//! Golden cases: every case of an implemented loss passes on the float64
//! reference and on the GPU. The cases are copied into tests/golden so a
//! clone is self-contained; $SEGLOSS_GOLDEN_DIR points elsewhere.

use std::path::PathBuf;

use segloss::golden::{GoldenCase, Outcome, case_files, check_case};
use segloss::LossConfig;

use crate::common::runner;

fn golden_dir() -> PathBuf {
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
