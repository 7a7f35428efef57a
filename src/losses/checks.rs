//! Checks several losses share: shapes, class weights, labels, ranges.

use crate::error::{Error, Result};
use crate::gpu::tensor::HostTensor;
use crate::losses::InputShapes;
use crate::losses::pointwise;

/// Checks that `name`'s shape equals the logits' shape.
pub(crate) fn same_shape(loss: &'static str, name: &'static str, shape: &[usize], logits: &[usize]) -> Result<()> {
    if shape != logits {
        return Err(Error::shape(loss, name, shape, format!("{name} has shape {shape:?} but the logits have {logits:?}; they must match")));
    }
    Ok(())
}

/// Splits `[N, C, S…]` into (N, C, S); errors when the rank is under 2 or
/// the target is not `[N, S…]`.
pub(crate) fn class_layout(loss: &'static str, shapes: &InputShapes) -> Result<(usize, usize, usize)> {
    let l = &shapes.logits;
    if l.len() < 2 {
        return Err(Error::shape(loss, "logits", l, format!("logits {l:?} must be [N, C, S…] with a class axis")));
    }
    let expected: Vec<usize> = std::iter::once(l[0]).chain(l[2..].iter().copied()).collect();
    if shapes.target != expected {
        return Err(Error::shape(loss, "target", &shapes.target, format!("target has shape {:?}; logits {l:?} need class indices of shape {expected:?}", shapes.target)));
    }
    if l.iter().any(|&d| d == 0) {
        return Err(Error::shape(loss, "logits", l, format!("logits {l:?} have an empty axis")));
    }
    if l[1] > pointwise::MAX_CLASSES {
        return Err(Error::limit(loss, format!("{} classes exceed the {} a kernel supports", l[1], pointwise::MAX_CLASSES)));
    }
    Ok((l[0], l[1], l[2..].iter().product()))
}

/// Checks class weights: one finite, non-negative weight per class.
pub(crate) fn check_class_weights(loss: &'static str, weights: &Option<Vec<f64>>, classes: Option<usize>) -> Result<()> {
    let Some(w) = weights else { return Ok(()) };
    if let Some(c) = classes {
        if w.len() != c {
            return Err(Error::input(loss, format!("class_weights has {} entries for {c} classes", w.len())));
        }
    }
    if let Some(bad) = w.iter().find(|x| !x.is_finite() || **x < 0.0) {
        return Err(Error::config(loss, format!("class_weights must be finite and non-negative; found {bad}")));
    }
    // The kernels take the weights, and their sum, as f32.
    if let Some(bad) = w.iter().find(|x| **x > F32_MAX) {
        return Err(Error::config(loss, format!("class weight {bad} does not fit in f32")));
    }
    if w.iter().sum::<f64>() > F32_MAX {
        return Err(Error::config(loss, "class_weights sum beyond f32's range"));
    }
    Ok(())
}

/// The largest finite f32: parameters the kernels read as f32 must not exceed it.
pub(crate) const F32_MAX: f64 = f32::MAX as f64;

/// Checks an ignore value fits the i32 labels the kernels read.
pub(crate) fn check_ignore_index(loss: &'static str, ignore: Option<i64>) -> Result<()> {
    match ignore {
        Some(v) => check_range(loss, "ignore_index", v as f64, i32::MIN as f64, i32::MAX as f64),
        None => Ok(()),
    }
}

/// Checks class-index labels: each in `[0, classes)` or the ignore value.
pub(crate) fn check_labels(loss: &'static str, target: &HostTensor, classes: usize, ignore: Option<i64>) -> Result<()> {
    let labels = target.as_i32("target")?;
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, y)| Some(**y as i64) != ignore && !(0..classes as i32).contains(*y))
    {
        let also = ignore.map(|v| format!(" and is not ignore_index {v}")).unwrap_or_default();
        return Err(Error::input(loss, format!("target[{i}] = {y} is outside [0, {classes}){also}")));
    }
    Ok(())
}

/// Checks a `spacing` parameter: finite physical pixel sizes within the
/// distance transform's [`SPACING_RANGE`](crate::primitives::distance::SPACING_RANGE).
pub(crate) fn check_spacing(loss: &'static str, spacing: Option<&[f64]>) -> Result<()> {
    let (lo, hi) = crate::primitives::distance::SPACING_RANGE;
    if let Some(v) = spacing.into_iter().flatten().find(|v| !(v.is_finite() && **v >= lo && **v <= hi)) {
        return Err(Error::config(loss, format!("spacing {v} must be a finite pixel size in [{lo:e}, {hi:e}]")));
    }
    Ok(())
}

/// Checks a finite number lies in `[lo, hi]`.
pub(crate) fn check_range(loss: &'static str, name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !(v.is_finite() && v >= lo && v <= hi) {
        return Err(Error::config(loss, format!("{name} = {v} must lie in [{lo}, {hi}]")));
    }
    Ok(())
}
