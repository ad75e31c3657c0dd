//! Session extensions: how crates above or beside the SQL layer (vector
//! search, the doctor, jobs) add to every session without the SQL layer
//! knowing them.
//!
//! The composition root (the `tidelake` binary) hands a session the
//! extensions it links in ([`Session::with_extensions`]). An extension may:
//! - register functions, table functions and optimizer rules on the
//!   session's DataFusion context ([`SessionExtension::register`]);
//! - serve tables by name, e.g. `sys.doctor` or `t$health`
//!   ([`SessionExtension::table`]), asked before the warehouse's tables;
//! - run statements it owns, e.g. `CREATE JOB` or a `CALL` of its own
//!   procedure ([`SessionExtension::statement`]), asked before the SQL
//!   layer's own statements.
//!
//! [`Session::with_extensions`]: crate::Session::with_extensions
//!
//! This module knows no session: extensions get a [`StatementContext`].

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;
use tidelake_engine::Catalog;

use crate::error::Result;
use crate::result::StatementResult;

/// Something that adds functions, tables or statements to every session.
#[async_trait]
pub trait SessionExtension: Send + Sync + Debug {
    /// Adds functions, table functions or optimizer rules to a new
    /// session's context.
    fn register(&self, _ctx: &SessionContext, _catalog: &Catalog) -> Result<()> {
        Ok(())
    }

    /// The table `database.name` (`name` with any `$` suffix as written),
    /// if this extension serves it; `None` lets the warehouse answer.
    async fn table(
        &self,
        _catalog: &Catalog,
        _database: &str,
        _name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(None)
    }

    /// Runs `sql` (one statement) if this extension owns it; `None` lets
    /// the SQL layer run it.
    async fn statement(
        &self,
        _session: &StatementContext<'_>,
        _sql: &str,
    ) -> Option<Result<StatementResult>> {
        None
    }
}

/// What an extension's statement may use of the session running it.
pub struct StatementContext<'a> {
    pub catalog: &'a Catalog,
    /// The session's DataFusion context (to plan queries the statement holds).
    pub ctx: &'a SessionContext,
    /// The database unqualified names refer to.
    pub database: String,
}

/// The extensions of one session, shared with its catalog providers.
pub type Extensions = Arc<Vec<Arc<dyn SessionExtension>>>;
