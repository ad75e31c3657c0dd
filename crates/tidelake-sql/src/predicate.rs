//! Translating DataFusion filter expressions into the engine's `Predicate`,
//! which it uses to skip partitions and files. The translation only has to
//! be conservative: DataFusion still applies every filter to the rows read
//! (pushdown is reported as `Inexact`), so an untranslatable part is simply
//! left out of a conjunction.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use tidelake_engine::{CompareOp, DataType, DataTypeKind, Datum, Predicate, TableSchema};

/// The engine predicate implied by `expr`, when there is a useful one.
pub(crate) fn to_predicate(expr: &Expr, schema: &TableSchema) -> Option<Predicate> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => match (to_predicate(left, schema), to_predicate(right, schema)) {
            (Some(l), Some(r)) => Some(and(vec![l, r])),
            (Some(p), None) | (None, Some(p)) => Some(p),
            (None, None) => None,
        },
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => Some(Predicate::Or(vec![
            to_predicate(left, schema)?,
            to_predicate(right, schema)?,
        ])),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = compare_op(*op)?;
            if let (Some(column), Expr::Literal(value, _)) = (column_name(left), right.as_ref()) {
                compare(schema, column, op, value)
            } else if let (Expr::Literal(value, _), Some(column)) =
                (left.as_ref(), column_name(right))
            {
                compare(schema, column, flip(op), value)
            } else {
                None
            }
        }
        Expr::Not(inner) => Some(Predicate::Not(Box::new(to_predicate(inner, schema)?))),
        Expr::IsNull(inner) => Some(Predicate::IsNull(
            known_column(schema, column_name(inner)?)?.to_string(),
        )),
        Expr::IsNotNull(inner) => Some(Predicate::IsNotNull(
            known_column(schema, column_name(inner)?)?.to_string(),
        )),
        Expr::InList(list) => {
            let column = known_column(schema, column_name(&list.expr)?)?;
            let data_type = column_type(schema, column)?;
            let values = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => datum_for(v, data_type),
                    _ => None,
                })
                .collect::<Option<Vec<Datum>>>()?;
            let pred = Predicate::In {
                column: column.to_string(),
                values,
            };
            Some(if list.negated {
                Predicate::Not(Box::new(pred))
            } else {
                pred
            })
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let column = column_name(expr)?;
            let (Expr::Literal(lo, _), Expr::Literal(hi, _)) = (low.as_ref(), high.as_ref()) else {
                return None;
            };
            Some(and(vec![
                compare(schema, column, CompareOp::GtEq, lo)?,
                compare(schema, column, CompareOp::LtEq, hi)?,
            ]))
        }
        _ => None,
    }
}

/// Translates a conjunction of filters (DataFusion hands them split).
pub(crate) fn conjunction(filters: &[Expr], schema: &TableSchema) -> Option<Predicate> {
    let parts: Vec<Predicate> = filters
        .iter()
        .filter_map(|f| to_predicate(f, schema))
        .collect();
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(and(parts)),
    }
}

fn and(parts: Vec<Predicate>) -> Predicate {
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Predicate::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Predicate::And(flat)
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn known_column<'a>(schema: &TableSchema, name: &'a str) -> Option<&'a str> {
    schema.fields.iter().any(|f| f.name == name).then_some(name)
}

fn column_type<'s>(schema: &'s TableSchema, name: &str) -> Option<&'s DataType> {
    schema
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| &f.data_type)
}

fn compare_op(op: Operator) -> Option<CompareOp> {
    Some(match op {
        Operator::Eq => CompareOp::Eq,
        Operator::NotEq => CompareOp::NotEq,
        Operator::Lt => CompareOp::Lt,
        Operator::LtEq => CompareOp::LtEq,
        Operator::Gt => CompareOp::Gt,
        Operator::GtEq => CompareOp::GtEq,
        _ => return None,
    })
}

/// `literal op column` as `column op' literal`.
fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::LtEq => CompareOp::GtEq,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::GtEq => CompareOp::LtEq,
        other => other,
    }
}

fn compare(
    schema: &TableSchema,
    column: &str,
    op: CompareOp,
    value: &ScalarValue,
) -> Option<Predicate> {
    let data_type = column_type(schema, column)?;
    let value = datum_for(value, data_type)?;
    Some(Predicate::Compare {
        column: column.to_string(),
        op,
        value,
    })
}

/// A literal as a value of the column's type, when it converts exactly.
/// NULL literals give `None`: a comparison with NULL is never true, and
/// leaving it to DataFusion is always correct.
pub(crate) fn datum_for(value: &ScalarValue, data_type: &DataType) -> Option<Datum> {
    use DataTypeKind as K;
    if value.is_null() {
        return None;
    }
    match &data_type.kind {
        K::Boolean => match value {
            ScalarValue::Boolean(Some(b)) => Some(Datum::Boolean(*b)),
            _ => None,
        },
        K::TinyInt => integer(value)
            .and_then(|v| i8::try_from(v).ok())
            .map(Datum::TinyInt),
        K::SmallInt => integer(value)
            .and_then(|v| i16::try_from(v).ok())
            .map(Datum::SmallInt),
        K::Int => integer(value)
            .and_then(|v| i32::try_from(v).ok())
            .map(Datum::Int),
        K::BigInt => integer(value)
            .and_then(|v| i64::try_from(v).ok())
            .map(Datum::BigInt),
        K::Float => match value {
            ScalarValue::Float32(Some(f)) => Some(Datum::Float(*f)),
            _ => None,
        },
        K::Double => match value {
            ScalarValue::Float64(Some(f)) => Some(Datum::Double(*f)),
            ScalarValue::Float32(Some(f)) => Some(Datum::Double(f64::from(*f))),
            _ => None,
        },
        K::Decimal { precision, scale } => match value {
            ScalarValue::Decimal128(Some(v), _, s) if i64::from(*s) == i64::from(*scale) => {
                Some(Datum::Decimal {
                    unscaled: *v,
                    precision: *precision,
                    scale: *scale,
                })
            }
            _ => None,
        },
        K::Char(_) | K::VarChar(_) => match value {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(Datum::String(s.clone())),
            _ => None,
        },
        K::Binary(_) | K::VarBinary(_) => match value {
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b)) => Some(Datum::Bytes(b.clone())),
            _ => None,
        },
        K::Date => match value {
            ScalarValue::Date32(Some(d)) => Some(Datum::Date(*d)),
            _ => None,
        },
        K::Timestamp(_) | K::TimestampLtz(_) => {
            let (millis, nanos_of_milli) = match value {
                ScalarValue::TimestampSecond(Some(v), _) => (v.checked_mul(1000)?, 0),
                ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 0),
                ScalarValue::TimestampMicrosecond(Some(v), _) => {
                    (v.div_euclid(1000), (v.rem_euclid(1000) * 1000) as i32)
                }
                ScalarValue::TimestampNanosecond(Some(v), _) => {
                    (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) as i32)
                }
                _ => return None,
            };
            Some(Datum::Timestamp {
                millis,
                nanos_of_milli,
            })
        }
        _ => None,
    }
}

fn integer(value: &ScalarValue) -> Option<i128> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => i128::from(*v),
        ScalarValue::Int16(Some(v)) => i128::from(*v),
        ScalarValue::Int32(Some(v)) => i128::from(*v),
        ScalarValue::Int64(Some(v)) => i128::from(*v),
        ScalarValue::UInt8(Some(v)) => i128::from(*v),
        ScalarValue::UInt16(Some(v)) => i128::from(*v),
        ScalarValue::UInt32(Some(v)) => i128::from(*v),
        ScalarValue::UInt64(Some(v)) => i128::from(*v),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use tidelake_engine::DataField;

    fn schema() -> TableSchema {
        let field = |id: i32, name: &str, kind: DataTypeKind| DataField {
            id,
            name: name.into(),
            data_type: DataType::new(kind, true),
            description: None,
        };
        TableSchema {
            version: 3,
            id: 0,
            fields: vec![
                field(0, "id", DataTypeKind::BigInt),
                field(1, "dt", DataTypeKind::VarChar(i32::MAX as u32)),
                field(
                    2,
                    "amount",
                    DataTypeKind::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                ),
                field(3, "n", DataTypeKind::Int),
            ],
            highest_field_id: 3,
            partition_keys: vec!["dt".into()],
            primary_keys: vec![],
            options: Default::default(),
            comment: None,
            time_millis: 0,
        }
    }

    #[test]
    fn comparisons_and_conjunctions() {
        let s = schema();
        let e = col("id")
            .eq(lit(7i64))
            .and(lit("2024-01-01").lt_eq(col("dt")));
        assert_eq!(
            to_predicate(&e, &s),
            Some(Predicate::And(vec![
                Predicate::Compare {
                    column: "id".into(),
                    op: CompareOp::Eq,
                    value: Datum::BigInt(7)
                },
                Predicate::Compare {
                    column: "dt".into(),
                    op: CompareOp::GtEq,
                    value: Datum::String("2024-01-01".into())
                },
            ]))
        );
    }

    #[test]
    fn untranslatable_parts_drop_out_of_and_but_not_or() {
        let s = schema();
        let opaque = col("id").gt(col("n"));
        let e = col("n").lt(lit(5i32)).and(opaque.clone());
        assert_eq!(
            to_predicate(&e, &s),
            Some(Predicate::Compare {
                column: "n".into(),
                op: CompareOp::Lt,
                value: Datum::Int(5)
            })
        );
        assert_eq!(to_predicate(&col("n").lt(lit(5i32)).or(opaque), &s), None);
    }

    #[test]
    fn literals_convert_to_the_column_type_or_not_at_all() {
        let s = schema();
        assert_eq!(
            to_predicate(&col("n").eq(lit(5i64)), &s),
            Some(Predicate::Compare {
                column: "n".into(),
                op: CompareOp::Eq,
                value: Datum::Int(5)
            })
        );
        // Does not fit an INT: no predicate rather than a wrong one.
        assert_eq!(to_predicate(&col("n").eq(lit(1i64 << 40)), &s), None);
        assert_eq!(
            to_predicate(
                &col("amount").eq(lit(ScalarValue::Decimal128(Some(1250), 10, 2))),
                &s
            ),
            Some(Predicate::Compare {
                column: "amount".into(),
                op: CompareOp::Eq,
                value: Datum::Decimal {
                    unscaled: 1250,
                    precision: 10,
                    scale: 2
                }
            })
        );
        assert_eq!(
            to_predicate(
                &col("amount").eq(lit(ScalarValue::Decimal128(Some(125), 10, 1))),
                &s
            ),
            None
        );
        assert_eq!(to_predicate(&col("nope").eq(lit(1i64)), &s), None);
    }

    #[test]
    fn null_checks_in_lists_and_between() {
        let s = schema();
        assert_eq!(
            to_predicate(&col("dt").is_null(), &s),
            Some(Predicate::IsNull("dt".into()))
        );
        assert_eq!(
            to_predicate(&col("dt").is_not_null(), &s),
            Some(Predicate::IsNotNull("dt".into()))
        );
        assert_eq!(
            to_predicate(&col("id").in_list(vec![lit(1i64), lit(2i64)], true), &s),
            Some(Predicate::Not(Box::new(Predicate::In {
                column: "id".into(),
                values: vec![Datum::BigInt(1), Datum::BigInt(2)]
            })))
        );
        assert_eq!(
            to_predicate(&col("id").between(lit(1i64), lit(3i64)), &s),
            Some(Predicate::And(vec![
                Predicate::Compare {
                    column: "id".into(),
                    op: CompareOp::GtEq,
                    value: Datum::BigInt(1)
                },
                Predicate::Compare {
                    column: "id".into(),
                    op: CompareOp::LtEq,
                    value: Datum::BigInt(3)
                },
            ]))
        );
    }
}
