//! Inputs that look like segmentation data, for `selftest`, `bench`, the
//! criterion benches and the tests: normal-ish logits, and label maps made of
//! ellipses (the same "blobs" as `shared/device/anchor_bench.py`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::gpu::tensor::{HostData, HostTensor};
use crate::losses::{LossConfig, TargetKind};

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
    let Some((&n, spatial)) = shape.split_first() else { return Vec::new() };
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

/// Label maps `[N, S…]` that look like segmentation targets: the blobs of
/// `anchor_bench.py` ([`blobs`]) from a seed.
pub fn blob_labels(shape: &[usize], classes: usize, seed: u64) -> Result<HostTensor> {
    if shape.len() < 2 || shape.contains(&0) {
        return Err(Error::input("samples", format!("blob label maps need a shape [N, S…] without empty axes; got {shape:?}")));
    }
    HostTensor::i32(shape, blobs(&mut rng(seed), shape, classes))
}


/// Class-index targets `[N, S…]` for logits `[N, C, S…]`.
pub fn class_targets(rng: &mut StdRng, logits_shape: &[usize]) -> Result<HostTensor> {
    if logits_shape.len() < 2 {
        return Err(Error::input("samples", format!("class targets need logits [N, C, S…]; got {logits_shape:?}")));
    }
    let shape: Vec<usize> = std::iter::once(logits_shape[0]).chain(logits_shape[2..].iter().copied()).collect();
    HostTensor::i32(&shape, blobs(rng, &shape, logits_shape[1].max(2)))
}

/// Dense {0, 1} targets of the logits' shape `[N, C, S…]`, from blobs (each channel its own map).
pub fn dense_targets(rng: &mut StdRng, logits_shape: &[usize]) -> Result<HostTensor> {
    let maps: Vec<usize> = if logits_shape.len() >= 3 {
        std::iter::once(logits_shape[0] * logits_shape[1]).chain(logits_shape[2..].iter().copied()).collect()
    } else {
        vec![1, logits_shape.iter().product()]
    };
    let data = blobs(rng, &maps, 2).into_iter().map(|v| v as f32).collect();
    HostTensor::f32(logits_shape, data)
}

/// `m` boxes `(x1, y1, x2, y2)` as anchor_bench.py draws them: a corner in
/// [0, 100)², sides in [1, 41).
pub fn boxes(rng: &mut StdRng, m: usize) -> Result<HostTensor> {
    let mut data = Vec::with_capacity(m * 4);
    for _ in 0..m {
        let (x, y) = (rng.random::<f32>() * 100.0, rng.random::<f32>() * 100.0);
        let (w, h) = (1.0 + rng.random::<f32>() * 40.0, 1.0 + rng.random::<f32>() * 40.0);
        data.extend([x, y, x + w, y + h]);
    }
    HostTensor::f32(&[m, 4], data)
}

/// What `anchor_bench.py` gives `hausdorff_dt`: logits that lean towards the
/// target, standard normal plus `lean` on each pixel's target class (class
/// targets `[N, S…]`), or plus `±lean` by each channel's target (dense
/// targets of the logits' shape). The predicted masks (p > 0.5) are then
/// blobs like the target's, as a trained network's are, not the specks that
/// plain noise over many classes gives.
pub fn leaning_logits(rng: &mut StdRng, logits_shape: &[usize], target: &HostTensor, lean: f32) -> Result<HostTensor> {
    if logits_shape.len() < 2 {
        return Err(Error::input("samples", format!("leaning logits need a shape [N, C, S…]; got {logits_shape:?}")));
    }
    let mut x = logits(rng, logits_shape, 1.0);
    let (n, c) = (logits_shape[0], logits_shape[1]);
    let s: usize = logits_shape[2..].iter().product();
    let HostData::F32(data) = &mut x.data else { unreachable!("logits are f32") };
    match &target.data {
        HostData::I32(labels) if labels.len() == n * s => {
            for (pixel, &y) in labels.iter().enumerate() {
                if (0..c as i32).contains(&y) {
                    data[(pixel / s * c + y as usize) * s + pixel % s] += lean;
                }
            }
        }
        HostData::F32(dense) if dense.len() == data.len() => {
            for (v, &g) in data.iter_mut().zip(dense) {
                *v += if g > 0.5 { lean } else { -lean };
            }
        }
        _ => return Err(Error::input("samples", format!("no targets of shape {:?} for logits {logits_shape:?}", target.shape))),
    }
    Ok(x)
}

/// Inputs for `config` whose logits (or predicted boxes) have `shape`:
/// the logits-slot tensor and the target. Logits are 3 × standard normal,
/// except for `hausdorff_dt`, whose predicted masks need to look like the
/// target's: [`leaning_logits`] with a lean of 4, as `anchor_bench.py`.
pub fn inputs(config: &LossConfig, shape: &[usize], rng: &mut StdRng) -> Result<(HostTensor, HostTensor)> {
    if let LossConfig::HausdorffDt(_) = config {
        let target = match config.target_kind() {
            TargetKind::Classes => class_targets(rng, shape)?,
            _ => dense_targets(rng, shape)?,
        };
        return Ok((leaning_logits(rng, shape, &target, 4.0)?, target));
    }
    Ok(match config.target_kind() {
        TargetKind::Classes => (logits(rng, shape, 3.0), class_targets(rng, shape)?),
        TargetKind::Dense => (logits(rng, shape, 3.0), dense_targets(rng, shape)?),
        TargetKind::Masks if shape.len() != 3 => return Err(Error::input("samples", format!("instance masks have shape [M, H, W]; got {shape:?}"))),
        TargetKind::Masks => {
            let masks = blobs(rng, shape, 2).into_iter().map(|v| v as f32).collect();
            (logits(rng, shape, 3.0), HostTensor::f32(shape, masks)?)
        }
        TargetKind::Boxes => match shape {
            [m, 4] => (boxes(rng, *m)?, boxes(rng, *m)?),
            _ => return Err(Error::input("samples", format!("boxes have shape [M, 4]; got {shape:?}"))),
        },
    })
}
