//! Errors of the warehouse store. Every variant names the path (or URI) and,
//! where an operation failed, which operation it was.

/// Result of warehouse store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in a warehouse store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (paths are relative to the warehouse root).
    #[error("object '{path}' not found")]
    NotFound { path: String },

    /// A relative path broke the path rules (see the crate docs).
    #[error("invalid path '{path}': {message}")]
    InvalidPath { path: String, message: String },

    /// The warehouse URI (or one of its options) cannot be used.
    #[error("invalid warehouse URI '{uri}': {message}")]
    InvalidUri { uri: String, message: String },

    /// A byte range that is empty-reversed or reaches past the end of the object.
    #[error("{op} of '{path}': range {start}..{end} does not fit an object of {size} bytes")]
    InvalidRange {
        op: &'static str,
        path: String,
        start: u64,
        end: u64,
        size: u64,
    },

    /// The backend failed.
    #[error("{op} of '{path}' failed: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A local filesystem call failed (folders, which object_store does not model).
    #[error("{op} of '{path}' failed: {source}")]
    LocalIo {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The backend cannot do an atomic create-if-absent, so commits could be
    /// lost; the warehouse is refused unless the user opted in.
    #[error(
        "warehouse '{uri}' refused: {reason}. Concurrent commits could silently overwrite each \
         other. Use a store with conditional writes (S3, MinIO, R2 all support If-None-Match), or, \
         if exactly one process ever writes to this warehouse, opt in with \
         TIDELAKE_ALLOW_UNSAFE_COMMITS=1"
    )]
    UnsafeCommits { uri: String, reason: String },

    /// A create-if-absent whose outcome could not be found out: the store
    /// neither confirmed it nor showed the object after several tries.
    #[error("{op} of '{path}': the outcome is unknown ({message})")]
    OutcomeUnknown {
        op: &'static str,
        path: String,
        message: String,
    },

    /// A fault injected by a [`FaultPlan`](crate::FaultPlan) (simulation tests only).
    #[error("injected fault in {op} of '{path}'{}", if *.written { " (after the object was written)" } else { "" })]
    Injected {
        op: &'static str,
        path: String,
        /// True when the operation took effect before the failure was reported.
        written: bool,
    },
}

impl StoreError {
    /// True when the operation certainly took no effect: it was refused
    /// before anything was sent (a bad path or URI, a store refused for
    /// commits), or a simulated fault says so. Any other error of a write
    /// may have come after the write took effect: an ambiguous outcome.
    pub fn certainly_not_applied(&self) -> bool {
        match self {
            StoreError::InvalidPath { .. }
            | StoreError::InvalidUri { .. }
            | StoreError::InvalidRange { .. }
            | StoreError::UnsafeCommits { .. } => true,
            StoreError::Injected { written, .. } => !written,
            StoreError::NotFound { .. }
            | StoreError::Io { .. }
            | StoreError::LocalIo { .. }
            | StoreError::OutcomeUnknown { .. } => false,
        }
    }

    /// Maps an object_store error, turning its NotFound into ours so callers
    /// can match on one variant whatever the backend.
    pub(crate) fn from_backend(op: &'static str, path: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                path: path.to_string(),
            },
            source => StoreError::Io {
                op,
                path: path.to_string(),
                source,
            },
        }
    }

    pub(crate) fn invalid_path(path: &str, message: impl Into<String>) -> Self {
        StoreError::InvalidPath {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn local_io(op: &'static str, path: &str, source: std::io::Error) -> Self {
        StoreError::LocalIo {
            op,
            path: path.to_string(),
            source,
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}
