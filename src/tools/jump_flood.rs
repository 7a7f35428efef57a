//! How far jump flooding ([`DistanceMode::JumpFlood`]) is from the exact
//! distance transform, measured on the GPU: for `segloss bench`'s note
//! beside the jump-flood time and the tests that hold its error to what
//! `primitives::distance` documents.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::HostTensor;
use crate::primitives::distance::{DistanceMode, signed_distance};
use crate::tools::samples::blob_labels;

/// How far `jump_flood` is from `exact` on one batch of maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JumpFloodError {
    /// Pixels compared (images × classes × pixels per image).
    pub pixels: u64,
    /// Pixels whose jump-flood value differs from the exact one by more than
    /// f32 rounding (`1e-5 · (1 + |exact|)`): a farther pixel was taken as the nearest.
    pub wrong: u64,
    /// The largest absolute difference, in physical units.
    pub max_error: f64,
    /// The same in pixels: divided by the smallest spacing.
    pub max_error_pixels: f64,
}

impl JumpFloodError {
    /// Share of the pixels that are wrong, in [0, 1].
    pub fn wrong_share(&self) -> f64 {
        if self.pixels == 0 { 0.0 } else { self.wrong as f64 / self.pixels as f64 }
    }
}

impl std::fmt::Display for JumpFloodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "jump_flood (JFA²) vs exact: {} of {} pixels wrong ({:.5} %), largest error {:.3} px",
            self.wrong,
            self.pixels,
            100.0 * self.wrong_share(),
            self.max_error_pixels
        )
    }
}

/// Runs both transforms on the GPU on `target` and compares them pixel by pixel.
pub fn measure_jump_flood(ctx: &GpuContext, target: &HostTensor, classes: &[usize], spacing: Option<&[f64]>) -> Result<JumpFloodError> {
    let exact = signed_distance(ctx, target, classes, spacing, DistanceMode::Exact)?;
    let flood = signed_distance(ctx, target, classes, spacing, DistanceMode::JumpFlood)?;
    let (exact, flood) = (exact.as_f32("distance")?, flood.as_f32("distance")?);
    let mut out = JumpFloodError { pixels: exact.len() as u64, wrong: 0, max_error: 0.0, max_error_pixels: 0.0 };
    for (&e, &j) in exact.iter().zip(flood) {
        let err = (e as f64 - j as f64).abs();
        if err > 1e-5 * (1.0 + (e as f64).abs()) {
            out.wrong += 1;
        }
        out.max_error = out.max_error.max(err);
    }
    let smallest = spacing.map(|s| s.iter().cloned().fold(f64::INFINITY, f64::min)).unwrap_or(1.0);
    out.max_error_pixels = out.max_error / smallest;
    Ok(out)
}

/// [`measure_jump_flood`] on `images` 256×256 label maps of [`blob_labels`]
/// with `classes` classes (every class's map), unit spacing.
pub fn measure_jump_flood_on_blobs(ctx: &GpuContext, images: usize, classes: usize, seed: u64) -> Result<JumpFloodError> {
    let target = blob_labels(&[images, 256, 256], classes, seed)?;
    measure_jump_flood(ctx, &target, &(0..classes).collect::<Vec<_>>(), None)
}
