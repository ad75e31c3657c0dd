//! Errors of the format layer: every variant says what was being decoded or
//! encoded, so that a corrupt file can be named by the caller.

/// Result of the format layer.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// What went wrong while encoding or decoding a Paimon format object.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A JSON document (schema, snapshot, ...) could not be parsed or written.
    #[error("invalid {what} JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// An Avro file (manifest, manifest list, ...) could not be read or written.
    #[error("invalid {what} Avro: {message}")]
    Avro { what: &'static str, message: String },
    /// A data type string or object that Paimon does not define.
    #[error("invalid data type {0}")]
    InvalidType(String),
    /// A serialized BinaryRow that does not match its declared types.
    #[error("invalid BinaryRow: {0}")]
    InvalidBinaryRow(String),
    /// A value that does not fit the type it is written as.
    #[error("value does not fit type {ty}: {message}")]
    ValueMismatch { ty: String, message: String },
    /// Something Paimon defines that Tidelake does not support yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Any other structurally invalid content.
    #[error("{0}")]
    Invalid(String),
}
