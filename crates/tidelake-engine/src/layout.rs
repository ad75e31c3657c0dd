//! The facts every reader and writer derives from a table's schema: key
//! columns, bucket keys, partition columns, sequence fields and options.

use arrow_schema::SchemaRef;
use tidelake_format::binary_row::{deserialize_binary_row, Datum};
use tidelake_format::schema::TableSchema;
use tidelake_format::types::DataType;

use crate::error::{EngineError, Result};
use crate::options::{ChangelogProducer, MergeEngine, TableOptions};

/// Facts derived once from a schema.
#[derive(Debug)]
pub(crate) struct TableLayout {
    pub schema: TableSchema,
    pub options: TableOptions,
    pub arrow_schema: SchemaRef,
    /// Indexes (into `schema.fields`) of the trimmed primary key.
    pub key_indices: Vec<usize>,
    pub key_types: Vec<DataType>,
    pub partition_indices: Vec<usize>,
    pub partition_types: Vec<DataType>,
    pub bucket_key_indices: Vec<usize>,
    pub bucket_key_types: Vec<DataType>,
    /// Indexes of `sequence.field` columns.
    pub sequence_indices: Vec<usize>,
}

impl TableLayout {
    /// A partition's values and its folder under the table (as its files
    /// are stored), from its serialized row; `what` names it in an error.
    pub(crate) fn partition_location(
        &self,
        partition: &[u8],
        what: impl std::fmt::Display,
    ) -> Result<(Vec<Datum>, String)> {
        let values = deserialize_binary_row(partition, &self.partition_types)
            .map_err(|e| EngineError::format(format!("partition of {what}"), e))?;
        let path = tidelake_format::path::partition_path_with_legacy_name(
            &self.schema.partition_keys,
            &values,
            &self.partition_types,
            &self.options.partition_default_name,
            self.options.partition_legacy_name,
        )?;
        Ok((values, path))
    }

    /// Derives the layout and checks the options against the columns; the
    /// merge functions are checked by [`crate::table::checked_layout`].
    pub(crate) fn new(schema: TableSchema) -> Result<Self> {
        let options = TableOptions::from_map(&schema.options, !schema.primary_keys.is_empty())?;
        let index_of = |name: &str| -> Result<usize> {
            schema
                .fields
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| EngineError::Corrupt {
                    path: format!("schema-{}", schema.id),
                    message: format!("key column '{name}' is not a field"),
                })
        };
        let key_names = if schema.primary_keys.is_empty() {
            Vec::new()
        } else {
            schema.trimmed_primary_keys()
        };
        let key_indices = key_names
            .iter()
            .map(|n| index_of(n))
            .collect::<Result<Vec<_>>>()?;
        let partition_indices = schema
            .partition_keys
            .iter()
            .map(|n| index_of(n))
            .collect::<Result<Vec<_>>>()?;
        let bucket_names = if options.bucket > 0 {
            schema.bucket_keys()
        } else {
            key_names.clone()
        };
        let bucket_key_indices = bucket_names
            .iter()
            .map(|n| index_of(n))
            .collect::<Result<Vec<_>>>()?;
        let sequence_indices = options
            .sequence_fields
            .iter()
            .map(|n| index_of(n))
            .collect::<Result<Vec<_>>>()?;
        let types = |idx: &[usize]| {
            idx.iter()
                .map(|i| schema.fields[*i].data_type.clone())
                .collect::<Vec<_>>()
        };
        Ok(TableLayout {
            arrow_schema: schema.arrow_schema(),
            key_types: types(&key_indices),
            partition_types: types(&partition_indices),
            bucket_key_types: types(&bucket_key_indices),
            key_indices,
            partition_indices,
            bucket_key_indices,
            sequence_indices,
            options,
            schema,
        })
        .and_then(|layout| {
            let producer = layout.options.changelog_producer;
            if layout.options.merge_engine == MergeEngine::FirstRow
                && !matches!(
                    producer,
                    ChangelogProducer::None
                        | ChangelogProducer::Lookup
                )
            {
                return Err(EngineError::invalid(
                    "the first-row merge engine supports 'changelog-producer' = 'none' or 'lookup' only (the first version of a key never changes, so only lookup can tell a new key from a repeated one)",
                ));
            }
            Ok(layout)
        })
    }

    pub fn is_primary_key(&self) -> bool {
        !self.schema.primary_keys.is_empty()
    }
}
