//! The configuration error both services report at start, naming the
//! variable to fix (never echoing a secret's value).

/// An invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{variable} is not set: {hint}")]
    Missing {
        /// The variable.
        variable: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A variable has a value that cannot work.
    #[error("{variable} is invalid: {reason}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Why, and what is expected.
        reason: String,
    },
}

impl ConfigError {
    /// `variable` is invalid because of `reason`.
    pub fn invalid(variable: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { variable, reason: reason.into() }
    }
}
