//! A handle on one table: its schema, options and the derived facts every
//! reader and writer needs (key columns, bucket keys, partition columns).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_schema::SchemaRef;
use tidelake_format::schema::TableSchema;
use tidelake_format::types::DataType;
use tidelake_store::WarehouseStore;

use crate::catalog::Identifier;
use crate::error::{EngineError, Result};
use crate::options::TableOptions;
use crate::read::scan::ScanBuilder;
use crate::snapshots::{SnapshotReader, TablePaths};
use crate::write::TableWriter;

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
    /// Derives the layout and checks the options against the columns (merge
    /// functions, sequence groups), so a bad table is refused when it is
    /// created or opened rather than at its first flush.
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
            crate::mergefn::MergeFunction::for_table(&layout)?;
            let producer = layout.options.changelog_producer;
            if layout.options.merge_engine == crate::options::MergeEngine::FirstRow
                && !matches!(
                    producer,
                    crate::options::ChangelogProducer::None
                        | crate::options::ChangelogProducer::Lookup
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

/// A table of the warehouse, as of the schema it was loaded with.
#[derive(Clone)]
pub struct Table {
    pub(crate) store: WarehouseStore,
    pub(crate) id: Identifier,
    pub(crate) reader: SnapshotReader,
    pub(crate) layout: Arc<TableLayout>,
    schema_cache: Arc<Mutex<HashMap<i64, Arc<TableSchema>>>>,
}

impl Table {
    pub(crate) fn new(
        store: WarehouseStore,
        id: Identifier,
        reader: SnapshotReader,
        schema: TableSchema,
    ) -> Result<Self> {
        let layout = TableLayout::new(schema)?;
        Ok(Table {
            store,
            id,
            reader,
            layout: Arc::new(layout),
            schema_cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn identifier(&self) -> &Identifier {
        &self.id
    }

    pub fn schema(&self) -> &TableSchema {
        &self.layout.schema
    }

    pub fn options(&self) -> &TableOptions {
        &self.layout.options
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        self.layout.arrow_schema.clone()
    }

    pub fn primary_keys(&self) -> &[String] {
        &self.layout.schema.primary_keys
    }

    pub fn partition_keys(&self) -> &[String] {
        &self.layout.schema.partition_keys
    }

    pub fn is_primary_key_table(&self) -> bool {
        self.layout.is_primary_key()
    }

    pub fn paths(&self) -> &TablePaths {
        self.reader.paths()
    }

    pub fn snapshots(&self) -> &SnapshotReader {
        &self.reader
    }

    pub fn store(&self) -> &WarehouseStore {
        &self.store
    }

    pub fn scan(&self) -> ScanBuilder {
        ScanBuilder::new(self.clone())
    }

    pub fn writer(&self) -> TableWriter {
        TableWriter::new(self.clone())
    }

    /// The schema a data file was written with (files carry their schema id).
    pub(crate) async fn schema_by_id(&self, id: i64) -> Result<Arc<TableSchema>> {
        if id == self.layout.schema.id {
            return Ok(Arc::new(self.layout.schema.clone()));
        }
        if let Some(s) = self
            .schema_cache
            .lock()
            .map_err(|_| EngineError::invalid("schema cache poisoned"))?
            .get(&id)
        {
            return Ok(s.clone());
        }
        let schema = Arc::new(self.reader.schema(id).await?);
        self.schema_cache
            .lock()
            .map_err(|_| EngineError::invalid("schema cache poisoned"))?
            .insert(id, schema.clone());
        Ok(schema)
    }
}
