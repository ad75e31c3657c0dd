//! The syntax of a join of two streams: `FROM a [AS x] [INNER | LEFT |
//! RIGHT] JOIN b [AS y] ON <equalities> [AND <filters>]` (or `USING`),
//! where neither table has `FOR SYSTEM_TIME AS OF`. What needs the tables
//! (which side a column is on, primary keys, the sink) is checked in
//! `join/plan.rs`.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Join, JoinConstraint, JoinOperator, TableFactor,
};

use crate::job::analyze::{refuse, table_name, TableName};
use tidelake_sql::Result;

/// How the rows of the two streams are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamJoinKind {
    Inner,
    /// Every row of the left table, null-extended without a match.
    Left,
    /// Every row of the right table: a LEFT join with the sides swapped.
    Right,
}

impl std::fmt::Display for StreamJoinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamJoinKind::Inner => "inner join",
            StreamJoinKind::Left => "left join",
            StreamJoinKind::Right => "right join",
        })
    }
}

/// A join of the job's source (the left table) with a second stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamJoin {
    pub right: TableName,
    pub kind: StreamJoinKind,
}

/// A table joined without `FOR SYSTEM_TIME AS OF` is streamed too.
fn is_streamed(relation: &TableFactor) -> bool {
    matches!(
        relation,
        TableFactor::Table {
            version: None,
            args: None,
            ..
        }
    )
}

/// Finds the join of two streams among the joins of `left`, if any, and
/// refuses the shapes that cannot be maintained, by name.
pub(crate) fn read_stream_join(joins: &[Join], left: &TableName) -> Result<Option<StreamJoin>> {
    let streamed: Vec<&Join> = joins.iter().filter(|j| is_streamed(&j.relation)).collect();
    let Some(join) = streamed.first() else {
        return Ok(None);
    };
    let TableFactor::Table { name, .. } = &join.relation else {
        return Ok(None);
    };
    let right = table_name(name)?;
    if streamed.len() > 1 {
        let names: Vec<String> = streamed
            .iter()
            .filter_map(|j| match &j.relation {
                TableFactor::Table { name, .. } => Some(name.to_string()),
                _ => None,
            })
            .collect();
        return Err(refuse(format!(
            "a join of more than two streamed tables ({left} with {}): a job joins two streams; join the others FOR SYSTEM_TIME AS OF PROCTIME() (lookup joins), or chain jobs through a table",
            names.join(", ")
        )));
    }
    if joins.len() > 1 {
        return Err(refuse(format!(
            "a lookup join together with a join of two streams ({left} with {right}); write the stream join into a table with one job and look up from it in another"
        )));
    }
    let (kind, constraint) = match &join.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (StreamJoinKind::Inner, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (StreamJoinKind::Left, c),
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (StreamJoinKind::Right, c),
        JoinOperator::FullOuter(_) => {
            return Err(refuse(format!(
                "a FULL OUTER JOIN of two streams ({left} with {right}): INNER, LEFT and RIGHT joins are maintained"
            )))
        }
        other => {
            let what = match other {
                JoinOperator::CrossJoin(_) => "CROSS JOIN",
                JoinOperator::Semi(_) | JoinOperator::LeftSemi(_) | JoinOperator::RightSemi(_) => {
                    "SEMI JOIN"
                }
                JoinOperator::Anti(_) | JoinOperator::LeftAnti(_) | JoinOperator::RightAnti(_) => {
                    "ANTI JOIN"
                }
                _ => "this kind of join",
            };
            return Err(refuse(format!(
                "a {what} of two streams ({left} with {right}): INNER, LEFT and RIGHT joins ON equalities are maintained"
            )));
        }
    };
    match constraint {
        JoinConstraint::On(on) => {
            if !has_column_equality(on) {
                return Err(non_equi(left, &right, on));
            }
        }
        JoinConstraint::Using(_) => {}
        JoinConstraint::Natural | JoinConstraint::None => {
            return Err(refuse(format!(
                "a join of two streams without ON ({left} with {right}): write ON a.x = b.y"
            )))
        }
    }
    Ok(Some(StreamJoin { right, kind }))
}

pub(crate) fn non_equi(
    left: &TableName,
    right: &TableName,
    on: impl std::fmt::Display,
) -> tidelake_sql::SqlError {
    refuse(format!(
        "a non-equi join of two streams ({left} with {right} ON {on}): the condition must be an AND of equalities a.x = b.y between the two tables (other conditions may be added with AND)"
    ))
}

/// Whether some conjunct of `on` is `column = column`.
fn has_column_equality(on: &SqlExpr) -> bool {
    match on {
        SqlExpr::Nested(e) => has_column_equality(e),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => has_column_equality(left) || has_column_equality(right),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => is_column(left) && is_column(right),
        _ => false,
    }
}

fn is_column(e: &SqlExpr) -> bool {
    match e {
        SqlExpr::Nested(e) => is_column(e),
        SqlExpr::Cast { expr, .. } => is_column(expr),
        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::job::analyze::tests::{parse, refused};

    #[test]
    fn inner_left_and_right_joins_of_two_streams_are_read() {
        let job = parse(
            "INSERT INTO db.enriched SELECT o.id, o.amount, c.name FROM db.orders AS o \
             JOIN db.customers AS c ON o.customer_id = c.id AND c.tier > 1 WHERE o.amount > 0",
        )
        .unwrap();
        let join = job.stream_join.unwrap();
        assert_eq!(job.source.to_string(), "db.orders");
        assert_eq!(join.right.to_string(), "db.customers");
        assert_eq!(join.kind, StreamJoinKind::Inner);
        assert!(job.lookups.is_empty());
        let left =
            parse("INSERT INTO s SELECT * FROM a LEFT OUTER JOIN b ON (a.k = b.id)").unwrap();
        assert_eq!(left.stream_join.unwrap().kind, StreamJoinKind::Left);
        let right = parse("INSERT INTO s SELECT * FROM a RIGHT JOIN b USING (id)").unwrap();
        assert_eq!(right.stream_join.unwrap().kind, StreamJoinKind::Right);
        let lookup = parse(
            "INSERT INTO s SELECT * FROM a JOIN b FOR SYSTEM_TIME AS OF PROCTIME() ON a.k = b.id",
        )
        .unwrap();
        assert!(lookup.stream_join.is_none());
        assert_eq!(lookup.lookups.len(), 1);
    }

    use super::StreamJoinKind;

    #[test]
    fn stream_joins_that_cannot_be_maintained_are_refused_by_name() {
        refused(
            "INSERT INTO s SELECT * FROM a FULL OUTER JOIN b ON a.k = b.id",
            &["FULL OUTER JOIN", "a with b"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a FULL JOIN b ON a.k = b.id",
            &["FULL OUTER JOIN"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a CROSS JOIN b",
            &["CROSS JOIN"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a JOIN b ON a.k < b.id",
            &["non-equi join", "a.k < b.id"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a JOIN b ON a.k = b.id OR a.j = b.id",
            &["non-equi join"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a JOIN b ON a.k = b.id JOIN c ON b.x = c.id",
            &["more than two streamed tables", "b, c"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a JOIN b ON a.k = b.id JOIN c FOR SYSTEM_TIME AS OF PROCTIME() ON b.x = c.id",
            &["lookup join together with a join of two streams"],
        );
        refused(
            "INSERT INTO s SELECT a.k, count(*) FROM a JOIN b ON a.k = b.id GROUP BY a.k",
            &["aggregates over a join of two streams"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a NATURAL JOIN b",
            &["without ON"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a, b",
            &["several tables", "JOIN b ON"],
        );
    }
}
