//! The segmented sum on its own, against float64 sums.

use rand::Rng;
use segloss::primitives::reduce::SegmentedSum;

use crate::common::{ctx, rng};

fn check(segments: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let values: Vec<f32> = (0..segments * len).map(|_| r.random::<f32>() - 0.25).collect();
    let got = SegmentedSum::sum_host(ctx(), &values, segments).unwrap();
    assert_eq!(got.len(), segments);
    for (k, g) in got.iter().enumerate() {
        let run = &values[k * len..(k + 1) * len];
        let want: f64 = run.iter().map(|&v| v as f64).sum();
        let scale: f64 = run.iter().map(|&v| v.abs() as f64).sum();
        assert!((*g as f64 - want).abs() <= 1e-6 * scale + 1e-7, "segment {k} of {segments}×{len}: {g} vs {want}");
    }
    got
}

#[test]
fn one_element() {
    assert_eq!(SegmentedSum::sum_host(ctx(), &[2.5], 1).unwrap(), vec![2.5]);
}

#[test]
fn lengths_around_the_tile_and_level_boundaries() {
    for (i, len) in [1usize, 2, 255, 256, 257, 2047, 2048, 2049, 4_194_305].into_iter().enumerate() {
        check(1, len, i as u64);
    }
}

#[test]
fn many_segments_at_once() {
    check(1000, 37, 20);
    check(7, 100_003, 21);
}

#[test]
fn more_than_65535_workgroups_in_one_level() {
    // 100,000 segments of 3 values: one workgroup each.
    check(100_000, 3, 22);
}

#[test]
fn input_larger_than_one_binding() {
    // 40M f32 = 160 MB: the first level reads through several bindings.
    let got = check(4, 10_000_000, 23);
    assert!(40_000_000u64 * 4 > ctx().binding_limit());
    // Bitwise reproducible.
    let mut r = rng(23);
    let values: Vec<f32> = (0..40_000_000).map(|_| r.random::<f32>() - 0.25).collect();
    let again = SegmentedSum::sum_host(ctx(), &values, 4).unwrap();
    assert!(got.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn values_that_do_not_split_evenly_are_an_error() {
    let err = SegmentedSum::sum_host(ctx(), &[1.0, 2.0, 3.0], 2).unwrap_err().to_string();
    assert!(err.contains("do not split"), "{err}");
}
