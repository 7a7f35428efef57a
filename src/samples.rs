//! Inputs that look like segmentation data, for `selftest`, `bench` and the
//! criterion benches: normal-ish logits, and label maps made of ellipses
//! (the same "blobs" as `shared/device/anchor_bench.py`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::Result;
use crate::gpu::HostTensor;

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal logits times `scale`.
pub fn logits(rng: &mut StdRng, shape: &[usize], scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|_| scale * Distribution::<f32>::sample(&StandardNormal, rng)).collect();
    HostTensor::f32(shape, data).expect("sized")
}

/// Label maps `[N, S…]` with two random ellipses per class 1..classes over background 0.
pub fn blobs(rng: &mut StdRng, shape: &[usize], classes: usize) -> Vec<i32> {
    let (n, spatial) = (shape[0], &shape[1..]);
    let per_image: usize = spatial.iter().product();
    let mut out = vec![0i32; n * per_image];
    for img in 0..n {
        for c in 1..classes {
            for _ in 0..2 {
                let centre: Vec<f64> = spatial.iter().map(|&d| rng.random::<f64>() * d as f64).collect();
                let radius: Vec<f64> = spatial.iter().map(|&d| d as f64 * rng.random_range(1.0 / 12.0..0.25)).collect();
                for (p, label) in out[img * per_image..(img + 1) * per_image].iter_mut().enumerate() {
                    let (mut rest, mut r2) = (p, 0.0);
                    for axis in (0..spatial.len()).rev() {
                        let coord = (rest % spatial[axis]) as f64 + 0.5;
                        rest /= spatial[axis];
                        r2 += ((coord - centre[axis]) / radius[axis]).powi(2);
                    }
                    if r2 <= 1.0 {
                        *label = c as i32;
                    }
                }
            }
        }
    }
    out
}

/// Class-index targets `[N, S…]` for logits `[N, C, S…]`.
pub fn class_targets(rng: &mut StdRng, logits_shape: &[usize]) -> Result<HostTensor> {
    let shape: Vec<usize> = std::iter::once(logits_shape[0]).chain(logits_shape[2..].iter().copied()).collect();
    HostTensor::i32(&shape, blobs(rng, &shape, logits_shape[1].max(2)))
}

/// Dense {0, 1} targets of the logits' shape, from blobs (each channel its own map).
pub fn dense_targets(rng: &mut StdRng, logits_shape: &[usize]) -> Result<HostTensor> {
    let maps: Vec<usize> = std::iter::once(logits_shape[0] * logits_shape.get(1).copied().unwrap_or(1))
        .chain(logits_shape.iter().skip(2).copied())
        .collect();
    let maps = if logits_shape.len() < 3 { vec![1, logits_shape.iter().product()] } else { maps };
    let data = blobs(rng, &maps, 2).into_iter().map(|v| v as f32).collect();
    HostTensor::f32(logits_shape, data)
}
