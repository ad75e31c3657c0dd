//! The SQL surface, added to every session through
//! [`tidelake_sql::SessionExtension`]: the `vector_search` and `hybrid_search` table functions,
//! the distance functions, the optimizer rule for `ORDER BY distance
//! LIMIT k`, and `CALL sys.create_vector_index` / `drop_vector_index`.

pub mod functions;
pub mod hybrid_fn;
pub mod procedures;
pub mod rule;
pub mod table_fn;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use tidelake_engine::Catalog;
use tidelake_sql::extension::StatementContext;
use tidelake_sql::{SessionExtension, StatementResult};

/// The vector search extension of SQL sessions.
#[derive(Debug, Default)]
pub struct VectorExtension;

impl VectorExtension {
    pub fn shared() -> Arc<dyn SessionExtension> {
        Arc::new(VectorExtension)
    }
}

#[async_trait]
impl SessionExtension for VectorExtension {
    fn register(&self, ctx: &SessionContext, catalog: &Catalog) -> tidelake_sql::Result<()> {
        for f in functions::all() {
            ctx.register_udf(f);
        }
        ctx.register_udtf(
            "vector_search",
            Arc::new(table_fn::VectorSearchFunction {
                catalog: catalog.clone(),
            }),
        );
        ctx.register_udtf(
            "hybrid_search",
            Arc::new(hybrid_fn::HybridSearchFunction {
                catalog: catalog.clone(),
            }),
        );
        ctx.add_optimizer_rule(Arc::new(rule::VectorSearchRule));
        Ok(())
    }

    async fn statement(
        &self,
        session: &StatementContext<'_>,
        sql: &str,
    ) -> Option<tidelake_sql::Result<StatementResult>> {
        let parsed = procedures::parse(sql)?;
        let run = async {
            let (procedure, args) = parsed?;
            procedures::run(session.catalog, &session.database, procedure, args).await
        };
        Some(run.await.map_err(Into::into))
    }
}
