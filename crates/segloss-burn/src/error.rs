//! What can go wrong between burn and segloss, naming the tensor at fault.

/// An error of segloss-burn: segloss's own, or a burn tensor it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// segloss refused the configuration, the shapes or the inputs.
    #[error(transparent)]
    Segloss(#[from] segloss::Error),
    /// A tensor lives on a backend or runtime other than burn's wgpu one.
    #[error("segloss-burn runs on burn's wgpu runtime; {input} is on {found}")]
    Runtime {
        /// The tensor: `logits`, `target`, `weight` or `distance`.
        input: &'static str,
        /// Where it is instead.
        found: String,
    },
    /// A tensor lives on another wgpu device than the one this loss was made on.
    #[error("{input} is on {found}, but this loss runs on {expected}: make the loss with that device's SeglossBurn")]
    Device {
        /// The tensor.
        input: &'static str,
        /// Its device.
        found: String,
        /// The loss's device.
        expected: String,
    },
    /// A tensor has a dtype the loss cannot take.
    #[error("{input} is {found}; {expected} is expected")]
    DType {
        /// The tensor.
        input: &'static str,
        /// Its dtype.
        found: String,
        /// What segloss takes there.
        expected: &'static str,
    },
    /// burn could not set up its wgpu device.
    #[error("burn's wgpu device: {0}")]
    Init(String),
    /// burn's runtime failed while segloss used a tensor (a buffer that could
    /// not be reached, a flush that failed).
    #[error("burn's runtime, handling {input}: {message}")]
    Server {
        /// The tensor.
        input: &'static str,
        /// burn's words.
        message: String,
    },
}

/// A result of segloss-burn.
pub type Result<T> = std::result::Result<T, Error>;
