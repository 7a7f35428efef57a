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
    /// An input tensor is invalid (shape mismatch, label out of range, …).
    #[error("invalid input: {0}")]
    Input(String),
    /// The work does not fit the device's limits.
    #[error("device limit exceeded: {0}")]
    Limit(String),
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

    pub(crate) fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}
