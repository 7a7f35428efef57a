//! The WGSL sources, embedded at build time, and their composition: a line
//! `//#include "lib/x.wgsl"` is replaced by that snippet (once per module),
//! so shared numerics and reductions live in one place.
//!
//! A line `//#elements NAME @binding(N) read` (or `read_write`) declares a
//! storage tensor whose element type the host chooses per plan
//! (`Encoding`): it becomes the binding's declaration and its accessors,
//! `load_NAME(i) -> f32` and, for `read_write`, `store_NAME(i, v)` and
//! `add_NAME(i, v)`, where `i` is an element index into the binding. The
//! kernel computes in f32 whatever the tensor holds, so one kernel reads
//! f32, f16 and bf16 tensors in place, and a half-precision tensor moves
//! half the bytes.

use crate::error::{Error, Result};
use crate::gpu::tensor::DType;

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
    "lib/half.wgsl",
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

/// How an `//#elements` binding holds its elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    /// `array<f32>`.
    F32,
    /// `array<f16>`, read and written natively (the device has `SHADER_F16`).
    F16,
    /// f16 pairs in u32 words, for devices without `SHADER_F16`.
    F16Words,
    /// bf16 pairs in u32 words: a bf16 is the upper half of an f32.
    Bf16Words,
}

impl Encoding {
    /// How a tensor of `dtype` is held, `native_f16` saying whether the device reads f16 natively.
    pub fn of(dtype: DType, native_f16: bool) -> Result<Self> {
        match dtype {
            DType::F32 => Ok(Encoding::F32),
            DType::F16 if native_f16 => Ok(Encoding::F16),
            DType::F16 => Ok(Encoding::F16Words),
            DType::BF16 => Ok(Encoding::Bf16Words),
            other => Err(Error::Device(format!("no kernel reads {} elements in place", other.name()))),
        }
    }

    /// The declaration and accessors of binding `name` (`read_write` when `written`).
    fn declare(self, name: &str, binding: &str, written: bool) -> String {
        let access = if written { "read_write" } else { "read" };
        let (array, load, store) = match self {
            Encoding::F32 => ("array<f32>", format!("{name}[i]"), format!("{name}[i] = v;")),
            // Rounded (to nearest even, saturating) on the bits first: the
            // conversion of a value f16 holds exactly is exact whatever
            // rounding the device's own conversion does. (naga 30 cannot
            // bitcast a u32 to vec2<f16>.)
            Encoding::F16 => ("array<f16>", format!("f32({name}[i])"), format!("{name}[i] = f16(f16_to_f32(f32_to_f16(v)));")),
            Encoding::F16Words | Encoding::Bf16Words => {
                let (from, to) = if self == Encoding::F16Words { ("f16_to_f32", "f32_to_f16") } else { ("bf16_to_f32", "f32_to_bf16") };
                // Two invocations may write the two halves of one word, so
                // a written tensor's words are atomic: clearing one half and
                // setting it touch nothing of the other.
                let word = if written { format!("atomicLoad(&{name}[i >> 1u])") } else { format!("{name}[i >> 1u]") };
                let array = if written { "array<atomic<u32>>" } else { "array<u32>" };
                let store = format!(
                    "let shift = (i & 1u) << 4u;\n    atomicAnd(&{name}[i >> 1u], ~(0xFFFFu << shift));\n    atomicOr(&{name}[i >> 1u], {to}(v) << shift);"
                );
                (array, format!("{from}(({word} >> ((i & 1u) << 4u)) & 0xFFFFu)"), store)
            }
        };
        let mut out = format!(
            "@group(0) {binding} var<storage, {access}> {name}: {array};\nfn load_{name}(i: u32) -> f32 {{\n    return {load};\n}}\n"
        );
        if written {
            out.push_str(&format!(
                "fn store_{name}(i: u32, v: f32) {{\n    {store}\n}}\nfn add_{name}(i: u32, v: f32) {{\n    store_{name}(i, load_{name}(i) + v);\n}}\n"
            ));
        }
        out
    }
}

/// The encodings of a kernel's `//#elements` bindings, by name; a binding
/// not named is f32.
pub(crate) type Elements = [(&'static str, Encoding)];

/// The composed WGSL of a kernel file, its includes expanded, its
/// `//#elements` bindings in f32.
pub fn compose(name: &str) -> Result<String> {
    Ok(compose_with(name, &[])?.source)
}

/// A kernel file composed: its WGSL, and the names of its `//#elements` bindings.
pub(crate) struct Composed {
    pub source: String,
    pub element_bindings: Vec<&'static str>,
}

/// The composed WGSL of a kernel file with its `//#elements` bindings
/// encoded as `elements` says. Naming a binding the file does not declare
/// that way is an error.
pub(crate) fn compose_with(name: &str, elements: &Elements) -> Result<Composed> {
    let mut out = String::new();
    let mut seen = Vec::new();
    let mut declared = Vec::new();
    expand(name, elements, &mut out, &mut seen, &mut declared)?;
    if let Some((missing, _)) = elements.iter().find(|(n, _)| !declared.contains(n)) {
        return Err(Error::Device(format!("shader {name} declares no //#elements binding named {missing}")));
    }
    let encodings = || elements.iter().map(|(_, e)| *e);
    if encodings().any(|e| e != Encoding::F32) {
        // Once per module, like any include: a no-op where the file includes it.
        expand(HALF, elements, &mut out, &mut seen, &mut declared)?;
    }
    if encodings().any(|e| e == Encoding::F16) {
        out.insert_str(0, "enable f16;\n");
    }
    Ok(Composed { source: out, element_bindings: declared })
}

/// The f16 and bf16 bit conversions the encoded accessors call.
const HALF: &str = "lib/half.wgsl";

fn expand(name: &str, elements: &Elements, out: &mut String, seen: &mut Vec<String>, declared: &mut Vec<&'static str>) -> Result<()> {
    if seen.iter().any(|s| s == name) {
        return Ok(());
    }
    seen.push(name.to_string());
    for line in source(name)?.lines() {
        let trimmed = line.trim();
        if let Some(inc) = trimmed.strip_prefix("//#include ") {
            expand(inc.trim().trim_matches('"'), elements, out, seen, declared)?;
        } else if let Some(decl) = trimmed.strip_prefix("//#elements ") {
            let bad = || Error::Device(format!("{name}: `{trimmed}` is not `//#elements NAME @binding(N) read|read_write`"));
            let [var, binding, access] = decl.split_whitespace().collect::<Vec<_>>()[..] else { return Err(bad()) };
            if !binding.starts_with("@binding(") || !matches!(access, "read" | "read_write") {
                return Err(bad());
            }
            let encoding = elements.iter().find(|(n, _)| *n == var).map_or(Encoding::F32, |(_, e)| *e);
            declared.push(var);
            out.push_str(&encoding.declare(var, binding, access == "read_write"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_declared_in_the_encoding_asked_for() {
        let f32 = compose("sigmoid_pointwise.wgsl").unwrap();
        assert!(f32.contains("var<storage, read> logits: array<f32>;") && f32.contains("fn load_logits(i: u32) -> f32"));
        assert!(f32.contains("var<storage, read_write> grad: array<f32>;") && f32.contains("fn add_grad("));
        assert!(!f32.contains("enable f16") && !f32.contains("fn f16_to_f32"), "an f32 kernel needs no half conversions");
        let native = compose_with("sigmoid_pointwise.wgsl", &[("logits", Encoding::F16), ("grad", Encoding::F16)]).unwrap();
        assert!(native.source.starts_with("enable f16;\n"));
        assert!(native.source.contains("logits: array<f16>;") && native.source.contains("grad: array<f16>;"));
        assert!(native.source.contains("targets: array<f32>;"), "a binding not named stays f32");
        let words = compose_with("sigmoid_pointwise.wgsl", &[("grad", Encoding::Bf16Words)]).unwrap().source;
        assert!(words.contains("grad: array<atomic<u32>>;") && words.contains("fn f32_to_bf16") && !words.contains("enable f16"));
        let names = compose_with("overlap.wgsl", &[]).unwrap().element_bindings;
        assert_eq!(names, ["logits", "grad"]);
    }

    #[test]
    fn a_binding_the_file_does_not_declare_is_an_error() {
        let e = compose_with("overlap.wgsl", &[("targets", Encoding::F16)]).err().expect("overlap's targets are words").to_string();
        assert!(e.contains("no //#elements binding named targets"), "{e}");
    }
}
