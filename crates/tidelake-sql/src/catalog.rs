//! The warehouse as a DataFusion catalog: databases are schemas, tables are
//! loaded lazily by name when a statement mentions them (so every statement
//! sees the latest schema and snapshot).
//!
//! Names of the form `table$snapshot_<id>` resolve to the table as of that
//! snapshot (time travel; `table VERSION AS OF <id>` is rewritten to it),
//! and `table$snapshots` to the list of its snapshots.
//!
//! DataFusion asks for schema and table *names* synchronously; those come
//! from a listing cached at the last `refresh` (the session refreshes it on
//! `SHOW` and after DDL). Lookups by name never use the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use tidelake_engine::{Catalog, EngineError, Identifier, Table};

use crate::error::SqlError;
use crate::provider::{to_df, TidelakeTable};
use crate::system_tables::{snapshots_table, SNAPSHOTS_SUFFIX};

/// The suffix that selects a snapshot of a table.
pub const SNAPSHOT_SUFFIX: &str = "$snapshot_";

/// What a table name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// The table as of its latest snapshot.
    Latest,
    /// The table as of a snapshot (time travel).
    Snapshot(i64),
    /// The list of the table's snapshots.
    Snapshots,
}

/// Splits `orders$snapshot_3` into (`orders`, `Snapshot(3)`).
pub(crate) fn parse_table_name(name: &str) -> Result<(&str, Selector), SqlError> {
    if let Some(table) = name
        .strip_suffix(SNAPSHOTS_SUFFIX)
        .filter(|t| !t.is_empty())
    {
        return Ok((table, Selector::Snapshots));
    }
    match name.split_once(SNAPSHOT_SUFFIX) {
        None => Ok((name, Selector::Latest)),
        Some((table, id)) => match id.parse::<i64>() {
            Ok(id) if id > 0 && !table.is_empty() => Ok((table, Selector::Snapshot(id))),
            _ => Err(SqlError::InvalidParameter(format!(
                "'{name}': a snapshot id after '{SNAPSHOT_SUFFIX}' must be a positive integer"
            ))),
        },
    }
}

async fn load_table(catalog: &Catalog, id: &Identifier) -> Result<Table, SqlError> {
    match catalog.load_table(id).await {
        Ok(t) => Ok(t),
        Err(EngineError::TableNotFound(_)) => {
            // Name the database when it is the part that is missing.
            if !catalog.database_exists(&id.database).await? {
                return Err(SqlError::UndefinedDatabase(id.database.clone()));
            }
            Err(SqlError::UndefinedTable(id.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Loads a table (optionally as of a snapshot) as our provider.
pub(crate) async fn load_provider(
    catalog: &Catalog,
    database: &str,
    name: &str,
) -> Result<TidelakeTable, SqlError> {
    let (table_name, selector) = parse_table_name(name)?;
    let id = Identifier::new(database, table_name);
    let table = load_table(catalog, &id).await?;
    let snapshot = match selector {
        Selector::Latest => None,
        Selector::Snapshot(snapshot_id) => {
            if table.snapshots().snapshot(snapshot_id).await?.is_none() {
                return Err(SqlError::InvalidParameter(format!(
                    "snapshot {snapshot_id} of table '{id}' does not exist (or has expired)"
                )));
            }
            Some(snapshot_id)
        }
        Selector::Snapshots => {
            return Err(SqlError::Unsupported(format!(
                "'{name}' is a system table: it can only be queried"
            )))
        }
    };
    Ok(TidelakeTable::new(table, snapshot))
}

/// Any name DataFusion may ask for: a table, a past snapshot of one, or a
/// system table.
async fn load_any(
    catalog: &Catalog,
    database: &str,
    name: &str,
) -> Result<Arc<dyn TableProvider>, SqlError> {
    let (table_name, selector) = parse_table_name(name)?;
    if selector == Selector::Snapshots {
        let table = load_table(catalog, &Identifier::new(database, table_name)).await?;
        return Ok(Arc::new(snapshots_table(&table).await?));
    }
    Ok(Arc::new(load_provider(catalog, database, name).await?))
}

/// All databases of a warehouse.
pub struct TidelakeCatalog {
    catalog: Catalog,
    databases: RwLock<Vec<String>>,
    providers: RwLock<HashMap<String, Arc<TidelakeDatabase>>>,
}

impl std::fmt::Debug for TidelakeCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidelakeCatalog")
            .field("warehouse", &self.catalog.warehouse_uri())
            .finish()
    }
}

impl TidelakeCatalog {
    pub fn new(catalog: Catalog) -> Self {
        TidelakeCatalog {
            catalog,
            databases: RwLock::new(Vec::new()),
            providers: RwLock::new(HashMap::new()),
        }
    }

    /// The provider of one database (kept, so its cached table list lives on).
    pub fn database(&self, name: &str) -> Arc<TidelakeDatabase> {
        if let Some(found) = self
            .providers
            .read()
            .ok()
            .and_then(|p| p.get(name).cloned())
        {
            return found;
        }
        let created = Arc::new(TidelakeDatabase {
            catalog: self.catalog.clone(),
            name: name.to_string(),
            tables: RwLock::new(Vec::new()),
        });
        match self.providers.write() {
            Ok(mut providers) => providers.entry(name.to_string()).or_insert(created).clone(),
            Err(_) => created,
        }
    }

    /// Re-reads the list of databases behind `schema_names`.
    pub async fn refresh(&self) -> Result<Vec<String>, SqlError> {
        let names = self.catalog.list_databases().await?;
        if let Ok(mut cached) = self.databases.write() {
            cached.clone_from(&names);
        }
        Ok(names)
    }
}

impl CatalogProvider for TidelakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.databases.read().map(|d| d.clone()).unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // Existence is checked when a table is loaded, so that the error
        // can say which database is missing.
        Some(self.database(name))
    }
}

/// One database of the warehouse.
pub struct TidelakeDatabase {
    catalog: Catalog,
    name: String,
    tables: RwLock<Vec<String>>,
}

impl std::fmt::Debug for TidelakeDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidelakeDatabase")
            .field("name", &self.name)
            .finish()
    }
}

impl TidelakeDatabase {
    /// Re-reads the list of tables behind `table_names`.
    pub async fn refresh(&self) -> Result<Vec<String>, SqlError> {
        let names = self.catalog.list_tables(&self.name).await?;
        if let Ok(mut cached) = self.tables.write() {
            cached.clone_from(&names);
        }
        Ok(names)
    }
}

#[async_trait]
impl SchemaProvider for TidelakeDatabase {
    fn table_names(&self) -> Vec<String> {
        self.tables.read().map(|t| t.clone()).unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let provider = load_any(&self.catalog, &self.name, name)
            .await
            .map_err(to_df)?;
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        let (table, _) = parse_table_name(name).unwrap_or((name, Selector::Latest));
        self.tables
            .read()
            .map(|t| t.iter().any(|n| n == table))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_suffixes_parse() {
        assert_eq!(
            parse_table_name("orders").unwrap(),
            ("orders", Selector::Latest)
        );
        assert_eq!(
            parse_table_name("orders$snapshot_12").unwrap(),
            ("orders", Selector::Snapshot(12))
        );
        assert_eq!(
            parse_table_name("orders$snapshots").unwrap(),
            ("orders", Selector::Snapshots)
        );
        assert_eq!(
            parse_table_name("$snapshots").unwrap(),
            ("$snapshots", Selector::Latest)
        );
        assert_eq!(
            parse_table_name("orders$snapshot_x").unwrap_err().code(),
            "22023"
        );
        assert_eq!(
            parse_table_name("orders$snapshot_0").unwrap_err().code(),
            "22023"
        );
        assert!(parse_table_name("$snapshot_1").is_err());
    }
}
