//! The WGSL sources, embedded at build time, and their composition: a line
//! `//#include "lib/x.wgsl"` is replaced by that snippet (once per module),
//! so shared numerics and reductions live in one place.

use crate::error::{Error, Result};

macro_rules! sources {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../shaders/", $name)))),*]
    };
}

/// Every shader file by its path under `shaders/`.
const SOURCES: &[(&str, &str)] = sources![
    "lib/grid.wgsl",
    "lib/numerics.wgsl",
    "lib/workgroup.wgsl",
    "lib/finite.wgsl",
    "lib/softmax.wgsl",
    "lib/loss_io.wgsl",
    "lib/labels.wgsl",
    "lib/sort_keys.wgsl",
    "lib/radix_sort.wgsl",
    "lib/stencil.wgsl",
    "lib/class_pixel.wgsl",
    "reduce.wgsl",
    "scan.wgsl",
    "sort.wgsl",
    "radix_sort.wgsl",
    "radix_sort_subgroup.wgsl",
    "finalize.wgsl",
    "copy.wgsl",
    "convert.wgsl",
    "shards.wgsl",
    "sigmoid_pointwise.wgsl",
    "softmax_pointwise.wgsl",
    "lovasz.wgsl",
    "overlap.wgsl",
    "box_iou.wgsl",
    "mask_giou.wgsl",
    "distance.wgsl",
    "boundary.wgsl",
    "hausdorff_dt.wgsl",
    "unified_focal.wgsl",
    "stencil.wgsl",
    "hausdorff_er.wgsl",
    "cl_dice.wgsl",
];

/// The kernel files (everything outside `lib/`), each a complete module once composed.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(n, _)| *n).filter(|n| !n.starts_with("lib/"))
}

fn source(name: &str) -> Result<&'static str> {
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Device(format!("no shader named {name}")))
}

/// The composed WGSL of a kernel file, its includes expanded.
pub fn compose(name: &str) -> Result<String> {
    let mut out = String::new();
    let mut seen = Vec::new();
    expand(name, &mut out, &mut seen)?;
    Ok(out)
}

fn expand(name: &str, out: &mut String, seen: &mut Vec<String>) -> Result<()> {
    if seen.iter().any(|s| s == name) {
        return Ok(());
    }
    seen.push(name.to_string());
    for line in source(name)?.lines() {
        match line.trim().strip_prefix("//#include ") {
            Some(inc) => expand(inc.trim().trim_matches('"'), out, seen)?,
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}
