//! The segmented scan on its own, against a CPU prefix sum.

use rand::Rng;
use segloss::primitives::scan::{ScanOperand, SegmentedScan, scan_cpu};

use crate::common::{ctx, rng};

fn check(values: &[u32], segments: usize, operand: ScanOperand) {
    let (prefix, totals) = SegmentedScan::scan_host(ctx(), values, segments, operand).unwrap();
    let (want_prefix, want_totals) = scan_cpu(values, segments, operand);
    let len = values.len() / segments;
    assert_eq!(totals, want_totals, "{segments}×{len}: totals");
    if let Some(i) = (0..values.len()).find(|&i| prefix[i] != want_prefix[i]) {
        panic!("{segments}×{len}: position {i}: {} vs {}", prefix[i], want_prefix[i]);
    }
}

fn random(seed: u64, n: usize, below: u32) -> Vec<u32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(0..below)).collect()
}

#[test]
fn lengths_around_the_tile_and_level_boundaries() {
    // 4,194,305 = 2,048² + 1: three levels.
    for (i, len) in [1usize, 2, 3, 255, 2047, 2048, 2049, 100_000, 4_194_305].into_iter().enumerate() {
        check(&random(50 + i as u64, len, 1000), 1, ScanOperand::Value);
    }
}

#[test]
fn many_segments_at_once() {
    check(&random(60, 1000 * 37, 100), 1000, ScanOperand::Value);
    check(&random(61, 5 * 300_001, 100), 5, ScanOperand::Value);
    check(&random(62, 70_000 * 3, 100), 70_000, ScanOperand::Value);
}

#[test]
fn low_bit_counts_and_wrapping() {
    check(&random(63, 3 * 50_000, u32::MAX), 3, ScanOperand::LowBit);
    // Full-range words wrap around 2^32, exactly like the CPU's wrapping_add.
    check(&random(64, 2 * 9000, u32::MAX), 2, ScanOperand::Value);
}

#[test]
fn the_cpu_twin_counts_low_bits() {
    assert_eq!(scan_cpu(&[3, 2, 5, 7, 1, 0], 2, ScanOperand::LowBit), (vec![1, 1, 2, 1, 2, 2], vec![2, 2]));
}

#[test]
fn uneven_splits_are_an_error() {
    let e = SegmentedScan::scan_host(ctx(), &[1, 2, 3], 2, ScanOperand::Value).unwrap_err().to_string();
    assert!(e.contains("do not split"), "{e}");
}
