//! Views, kept in the warehouse.
//!
//! Paimon's filesystem catalog stores no views (its `FileSystemCatalog`
//! leaves `createView` unsupported; the Hive, JDBC and REST catalogs keep
//! views in their metastore). Tidelake keeps each view as one file,
//! `{warehouse}/{db}.db/.view/{name}.json`, holding the document Paimon's
//! JDBC catalog stores for a view (its `ViewSchema`): `fields` (Paimon data
//! fields), `query`, `dialects`, `comment` (left out when absent) and
//! `options`. Paimon's engines list as tables only folders with a schema,
//! so they ignore `.view/`, and no table can be named `.view` (names never
//! start with '.').
//!
//! A view is created with the store's create-if-absent, so two sessions
//! creating the same view cannot both succeed; `OR REPLACE` overwrites.
//! Tables and views share one namespace: creating either refuses a name the
//! other holds (checked before writing, so a table and a view created at
//! the same instant could both succeed).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tidelake_format::schema::to_pretty_json;
use tidelake_format::types::DataField;
use tidelake_store::{PutOutcome, StoreError, WarehouseStore};

use crate::error::{EngineError, Result};
use crate::kv::TablePaths;
use crate::snapshots::{file_name, SnapshotReader};
use crate::table::Identifier;

/// The folder of a database's views.
pub const VIEW_DIR: &str = ".view";
/// The dialect Tidelake's own query text is recorded under.
pub const VIEW_DIALECT: &str = "tidelake";

/// A view's definition (Paimon's `ViewSchema`).
#[derive(Clone, Debug, PartialEq)]
pub struct ViewSpec {
    /// The columns the query returns.
    pub fields: Vec<DataField>,
    /// The query as written.
    pub query: String,
    /// The query per engine dialect.
    pub dialects: BTreeMap<String, String>,
    pub comment: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ViewFileOut<'a> {
    fields: &'a [DataField],
    query: &'a str,
    dialects: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    options: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ViewFileIn {
    #[serde(default)]
    fields: Vec<Value>,
    query: String,
    #[serde(default)]
    dialects: BTreeMap<String, String>,
    comment: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

impl ViewSpec {
    /// The query for Tidelake: its own dialect's text, else `query`.
    pub fn tidelake_query(&self) -> &str {
        self.dialects
            .get(VIEW_DIALECT)
            .map(String::as_str)
            .unwrap_or(&self.query)
    }

    pub fn to_json(&self) -> Result<String> {
        let file = ViewFileOut {
            fields: &self.fields,
            query: &self.query,
            dialects: &self.dialects,
            comment: self.comment.as_deref(),
            options: &self.options,
        };
        to_pretty_json(&file).map_err(|e| EngineError::Corrupt {
            path: "view".into(),
            message: format!("cannot write the view document: {e}"),
        })
    }

    pub fn from_json(path: &str, bytes: &[u8]) -> Result<ViewSpec> {
        let file: ViewFileIn = serde_json::from_slice(bytes).map_err(|e| EngineError::Corrupt {
            path: path.to_string(),
            message: format!("not a view document: {e}"),
        })?;
        let fields = file
            .fields
            .iter()
            .map(DataField::parse_json)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| EngineError::format(path.to_string(), e))?;
        Ok(ViewSpec {
            fields,
            query: file.query,
            dialects: file.dialects,
            comment: file.comment,
            options: file.options,
        })
    }
}

/// The views of a warehouse.
#[derive(Clone)]
pub struct ViewStore {
    store: WarehouseStore,
}

impl ViewStore {
    pub(crate) fn new(store: WarehouseStore) -> Self {
        ViewStore { store }
    }

    fn dir(database: &str) -> String {
        format!("{database}.db/{VIEW_DIR}")
    }

    fn path(id: &Identifier) -> String {
        format!("{}/{}.json", Self::dir(&id.database), id.table)
    }

    /// Whether a table (a folder with a schema) has this name.
    pub(crate) async fn table_exists(store: &WarehouseStore, id: &Identifier) -> Result<bool> {
        let paths = TablePaths::new(format!("{}.db/{}", id.database, id.table));
        let reader = SnapshotReader::new(store.clone(), paths);
        Ok(!reader.list_schema_ids().await?.is_empty())
    }

    /// The names of a database's views, sorted.
    pub async fn list(&self, database: &str) -> Result<Vec<String>> {
        let (_, files) = match self.store.list_dir(&Self::dir(database)).await {
            Ok(listed) => listed,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut names: Vec<String> = files
            .iter()
            .filter_map(|f| file_name(&f.path).strip_suffix(".json"))
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    /// A view's definition; `Ok(None)` when there is no such view.
    pub async fn get(&self, id: &Identifier) -> Result<Option<ViewSpec>> {
        let path = Self::path(id);
        match self.store.get(&path).await {
            Ok(bytes) => ViewSpec::from_json(&path, &bytes).map(Some),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, id: &Identifier) -> Result<bool> {
        Ok(self.store.exists(&Self::path(id)).await?)
    }

    /// Creates a view (the database must exist: the caller checks). With
    /// `replace` an existing view is overwritten; with `if_not_exists` it is
    /// kept. A table of that name is refused either way.
    pub async fn create(
        &self,
        id: &Identifier,
        spec: &ViewSpec,
        replace: bool,
        if_not_exists: bool,
    ) -> Result<()> {
        crate::table::validate_name("view", &id.table)?;
        if Self::table_exists(&self.store, id).await? {
            return Err(EngineError::invalid(format!(
                "cannot create view '{id}': a table of that name exists (tables and views share names)"
            )));
        }
        let path = Self::path(id);
        let json = Bytes::from(spec.to_json()?.into_bytes());
        if replace {
            self.store.put(&path, json).await?;
            return Ok(());
        }
        match self.store.create_if_absent(&path, json).await? {
            PutOutcome::Created => Ok(()),
            PutOutcome::AlreadyExists if if_not_exists => Ok(()),
            PutOutcome::AlreadyExists => Err(EngineError::invalid(format!(
                "view '{id}' already exists (use CREATE OR REPLACE VIEW to change it)"
            ))),
        }
    }

    /// Drops a view; a missing one is an error unless `if_exists`.
    pub async fn drop(&self, id: &Identifier, if_exists: bool) -> Result<()> {
        if !self.exists(id).await? {
            if if_exists {
                return Ok(());
            }
            let hint = if Self::table_exists(&self.store, id).await? {
                " ('{id}' is a table: use DROP TABLE)"
            } else {
                ""
            };
            return Err(EngineError::invalid(format!(
                "view '{id}' does not exist{}",
                hint.replace("{id}", &id.to_string())
            )));
        }
        self.store.delete(&Self::path(id)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_format::types::DataType;

    #[test]
    fn view_documents_have_paimons_shape_and_round_trip() {
        let spec = ViewSpec {
            fields: vec![DataField {
                id: 0,
                name: "id".into(),
                data_type: DataType::parse_json(&Value::String("BIGINT NOT NULL".into())).unwrap(),
                description: None,
            }],
            query: "SELECT id FROM t".into(),
            dialects: BTreeMap::from([(VIEW_DIALECT.to_string(), "SELECT id FROM t".into())]),
            comment: None,
            options: BTreeMap::new(),
        };
        let json = spec.to_json().unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["dialects", "fields", "options", "query"]);
        assert_eq!(value["fields"][0]["type"], "BIGINT NOT NULL");
        assert_eq!(ViewSpec::from_json("v", json.as_bytes()).unwrap(), spec);
        assert!(ViewSpec::from_json("v", b"{}").is_err());
    }
}
