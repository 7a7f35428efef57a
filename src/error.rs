//! The one error type of the crate: every failure names what was wrong.

/// Everything that can go wrong in segloss, each variant carrying a sentence
/// that names the offending input, parameter or limit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter could be found or opened.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter exists but creating or using the device failed.
    #[error("GPU device error: {0}")]
    Device(String),
    /// A loss configuration is invalid (unknown key, value out of range, …).
    #[error("invalid {loss} configuration: {message}")]
    Config {
        /// The loss the configuration is for.
        loss: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An input's shape does not fit the loss's parameters or the plan.
    #[error("invalid input: {scope}: {message}")]
    Shape {
        /// The loss (or primitive) that refused it.
        scope: &'static str,
        /// The input: `logits`, `target`, `weight`, `grad`, `value`, `distance`, …
        input: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// What is wrong, in words.
        message: String,
    },
    /// An input's values or its buffer break a rule (a label out of range, a
    /// target outside [0, 1], a buffer without STORAGE usage, …).
    #[error("invalid input: {scope}: {message}")]
    Input {
        /// The loss (or primitive, or `tensor`) that refused it.
        scope: &'static str,
        /// What is wrong, in words, naming the input.
        message: String,
    },
    /// The work does not fit the device's limits or the kernels'.
    #[error("device limit exceeded: {scope}: {message}")]
    Limit {
        /// The loss (or primitive, or `buffer`) that hit the limit.
        scope: &'static str,
        /// Which limit, and by how much.
        message: String,
    },
    /// A golden case file could not be read or understood.
    #[error("golden case {file}: {message}")]
    Golden {
        /// The file that failed.
        file: String,
        /// What went wrong.
        message: String,
    },
}

/// `Result` with segloss's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(loss: &'static str, message: impl Into<String>) -> Self {
        Error::Config { loss, message: message.into() }
    }

    pub(crate) fn input(scope: &'static str, message: impl Into<String>) -> Self {
        Error::Input { scope, message: message.into() }
    }

    pub(crate) fn shape(scope: &'static str, input: &'static str, shape: &[usize], message: impl Into<String>) -> Self {
        Error::Shape { scope, input, shape: shape.to_vec(), message: message.into() }
    }

    pub(crate) fn limit(scope: &'static str, message: impl Into<String>) -> Self {
        Error::Limit { scope, message: message.into() }
    }
}
