//! Merge functions of the `partial-update` and `aggregation` engines: how the
//! versions of one key (oldest first, in sequence order) combine into one row.
//!
//! The same fold runs when a write buffer is flushed (versions of one key in
//! one buffer) and when sorted runs are merged on read, so a file's row is a
//! partial result that later merges continue from. Two cases need care to
//! keep that associative:
//! - a key whose versions are all retractions (-U/-D) becomes one retraction
//!   row holding the *combined* retraction (e.g. the sum of retracted
//!   amounts), which later merges apply like the original rows; it is not
//!   visible on its own (as a lone retraction is not, in Paimon).
//! - sequence groups replace a whole group when their sequence is newer,
//!   which is last-writer-wins and thus associative.
//!
//! Key columns, partition columns included, carry the key's values in
//! every merged row.
//!
//! Functions that only choose one of their inputs (last_value, min, ...)
//! record the chosen cell and the output is gathered with `interleave`;
//! arithmetic ones (sum, product, bool_and/or, listagg) compute values;
//! collect and merge_map (`nested`) gather elements of their inputs.

mod nested;
mod value;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef};
use arrow_schema::DataType as ArrowType;

use crate::error::{EngineError, Result};
use crate::layout::TableLayout;
use crate::options::MergeEngine;
use nested::{Collected, Equality, NestedKind};
use tidelake_format::types::{DataType, DataTypeKind};
use value::{Arith, Scalar};

const KIND_INSERT: i8 = 0;
const KIND_UPDATE_BEFORE: i8 = 1;
const KIND_DELETE: i8 = 3;

fn is_add(kind: i8) -> bool {
    crate::kv::is_addition(kind)
}

/// Paimon's field aggregate functions this engine implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggFunc {
    Sum,
    Product,
    Min,
    Max,
    LastValue,
    LastNonNullValue,
    FirstValue,
    FirstNonNullValue,
    ListAgg,
    BoolAnd,
    BoolOr,
    Collect,
    MergeMap,
}

impl AggFunc {
    fn parse(name: &str, field: &str) -> Result<AggFunc> {
        Ok(match name.trim() {
            "sum" => AggFunc::Sum,
            "product" => AggFunc::Product,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "last_value" => AggFunc::LastValue,
            "last_non_null_value" => AggFunc::LastNonNullValue,
            "first_value" => AggFunc::FirstValue,
            "first_non_null_value" | "first_not_null_value" => AggFunc::FirstNonNullValue,
            "listagg" => AggFunc::ListAgg,
            "bool_and" => AggFunc::BoolAnd,
            "bool_or" => AggFunc::BoolOr,
            "collect" => AggFunc::Collect,
            "merge_map" => AggFunc::MergeMap,
            "count" => {
                return Err(EngineError::Unsupported(format!(
                    "field '{field}': aggregate function 'count' was removed from Paimon because it cannot be merged correctly across files; use 'sum' over a column of 1s"
                )))
            }
            known @ ("nested_update" | "nested_partial_update" | "merge_map_with_keytime"
            | "hll_sketch" | "theta_sketch" | "rbm32" | "rbm64" | "primary_key") => {
                return Err(EngineError::Unsupported(format!(
                    "field '{field}': aggregate function '{known}' is not supported yet"
                )))
            }
            other => {
                return Err(EngineError::invalid(format!(
                    "field '{field}': unknown aggregate function '{other}' (sum, product, min, max, last_value, last_non_null_value, first_value, first_non_null_value, listagg, bool_and, bool_or, collect, merge_map)"
                )))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            AggFunc::Sum => "sum",
            AggFunc::Product => "product",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::LastValue => "last_value",
            AggFunc::LastNonNullValue => "last_non_null_value",
            AggFunc::FirstValue => "first_value",
            AggFunc::FirstNonNullValue => "first_non_null_value",
            AggFunc::ListAgg => "listagg",
            AggFunc::BoolAnd => "bool_and",
            AggFunc::BoolOr => "bool_or",
            AggFunc::Collect => "collect",
            AggFunc::MergeMap => "merge_map",
        }
    }

    /// Whether results are computed values rather than one of the inputs
    /// (collect and merge_map compute element lists: see `is_nested`).
    fn computes(self) -> bool {
        matches!(
            self,
            AggFunc::Sum
                | AggFunc::Product
                | AggFunc::ListAgg
                | AggFunc::BoolAnd
                | AggFunc::BoolOr
                | AggFunc::Collect
                | AggFunc::MergeMap
        )
    }

    fn is_nested(self) -> bool {
        matches!(self, AggFunc::Collect | AggFunc::MergeMap)
    }

    /// Paimon's list: sum, product, collect, merge_map, nested_update,
    /// last_value and last_non_null_value retract.
    fn can_retract(self) -> bool {
        matches!(
            self,
            AggFunc::Sum
                | AggFunc::Product
                | AggFunc::LastValue
                | AggFunc::LastNonNullValue
                | AggFunc::Collect
                | AggFunc::MergeMap
        )
    }

    /// `paimon` is the field's Paimon type, `t` its Arrow type (MAP and
    /// MULTISET are both Arrow maps; merge_map takes MAP only, as Paimon).
    fn check_type(self, paimon: &DataType, t: &ArrowType, field: &str) -> Result<()> {
        let ok = match self {
            AggFunc::Sum | AggFunc::Product => value::is_numeric(t),
            AggFunc::Min | AggFunc::Max => value::is_scalar_type(t) && *t != ArrowType::Boolean,
            AggFunc::ListAgg => matches!(t, ArrowType::Utf8 | ArrowType::LargeUtf8),
            AggFunc::BoolAnd | AggFunc::BoolOr => *t == ArrowType::Boolean,
            AggFunc::Collect => {
                matches!(paimon.kind, DataTypeKind::Array(_)) && matches!(t, ArrowType::List(_))
            }
            AggFunc::MergeMap => {
                matches!(paimon.kind, DataTypeKind::Map(..)) && matches!(t, ArrowType::Map(..))
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            let wanted = match self {
                AggFunc::Collect => " (it takes ARRAY fields)",
                AggFunc::MergeMap => " (it takes MAP fields)",
                _ => "",
            };
            Err(EngineError::invalid(format!(
                "field '{field}': aggregate function '{}' does not support type {paimon}{wanted}",
                self.name()
            )))
        }
    }
}

/// One aggregated field: its function and per-field options.
#[derive(Clone, Debug)]
struct AggSpec {
    func: AggFunc,
    /// `fields.<f>.ignore-retract`
    ignore_retract: bool,
    /// `fields.<f>.list-agg-delimiter`
    delimiter: String,
    /// `fields.<f>.distinct` (collect, listagg)
    distinct: bool,
    /// Element (map key) equality of collect and merge_map.
    equality: Option<Arc<Equality>>,
}

impl AggSpec {
    fn nested_kind(&self) -> Option<NestedKind> {
        match self.func {
            AggFunc::Collect => Some(NestedKind::Collect {
                distinct: self.distinct,
            }),
            AggFunc::MergeMap => Some(NestedKind::MergeMap),
            _ => None,
        }
    }
}

/// How one field of the table merges.
#[derive(Clone, Debug)]
enum Role {
    /// Primary-key column: equal in every version.
    Key,
    /// partial-update outside sequence groups: last non-null value.
    LastNonNull,
    /// partial-update: a field of sequence group `g`.
    Member(usize),
    /// partial-update: a sequence field of group `g`.
    GroupSequence(usize),
    Agg(AggSpec),
}

/// One version of a key: where its row is and its `_VALUE_KIND`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Version {
    pub slot: usize,
    pub row: usize,
    pub kind: i8,
}

/// Access to the value columns of the batches versions point into.
pub(crate) trait VersionColumns {
    /// Column of table field `field` in batch `slot`.
    fn column(&self, slot: usize, field: usize) -> &dyn Array;
}

/// The merge function of a partial-update or aggregation table.
#[derive(Clone, Debug)]
pub(crate) struct MergeFunction {
    engine: MergeEngine,
    roles: Vec<Role>,
    /// Per sequence group, its sequence fields.
    groups: Vec<Vec<usize>>,
    field_names: Vec<String>,
    field_types: Vec<ArrowType>,
    ignore_delete: bool,
    remove_record_on_delete: bool,
}

fn option_bool(options: &BTreeMap<String, String>, key: &str) -> Result<bool> {
    match options.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(EngineError::invalid(format!(
            "option '{key}': '{v}' is not true or false"
        ))),
    }
}

/// `ignore-delete` (and the engine-specific keys Paimon still reads): drop
/// -U/-D input instead of applying it.
pub(crate) fn ignore_delete(options: &BTreeMap<String, String>) -> Result<bool> {
    let mut any = false;
    for key in [
        "ignore-delete",
        "partial-update.ignore-delete",
        "first-row.ignore-delete",
        "deduplicate.ignore-delete",
    ] {
        any |= option_bool(options, key)?;
    }
    Ok(any)
}

impl MergeFunction {
    /// The merge function of `layout`'s table; `None` for deduplicate and
    /// first-row, which keep one version. Fails with a message naming the
    /// option or field when the options do not fit the table.
    pub(crate) fn for_table(layout: &TableLayout) -> Result<Option<MergeFunction>> {
        let engine = layout.options.merge_engine;
        if engine == MergeEngine::FirstRow && !layout.sequence_indices.is_empty() {
            // As in Paimon: the first row is the first written, whatever its sequence.
            return Err(EngineError::invalid(
                "option 'sequence.field' cannot be used with the first-row merge engine",
            ));
        }
        if !matches!(
            engine,
            MergeEngine::PartialUpdate | MergeEngine::Aggregation
        ) {
            return Ok(None);
        }
        let options = &layout.schema.options;
        let field_names: Vec<String> = layout
            .schema
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let field_types: Vec<ArrowType> = layout
            .arrow_schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let index_of = |name: &str, option: &str| -> Result<usize> {
            field_names
                .iter()
                .position(|n| n == name.trim())
                .ok_or_else(|| {
                    EngineError::invalid(format!(
                        "option '{option}': '{}' is not a field of the table",
                        name.trim()
                    ))
                })
        };
        // Per-field options must name fields (a typo would silently do nothing).
        for key in options.keys() {
            if let Some(rest) = key.strip_prefix("fields.") {
                for suffix in [
                    ".aggregate-function",
                    ".ignore-retract",
                    ".list-agg-delimiter",
                    ".distinct",
                ] {
                    if let Some(name) = rest.strip_suffix(suffix) {
                        if name != "default" || suffix != ".aggregate-function" {
                            index_of(name, key)?;
                        }
                    }
                }
            }
        }
        // Every column of the full primary key, partition columns included
        // (the layout's key is trimmed of them): equal in all versions of a
        // key, so a merged row always carries them, even when its newest
        // version is a retraction whose value fields do not count.
        let mut key_fields: Vec<usize> = layout.key_indices.clone();
        for name in &layout.schema.primary_keys {
            key_fields.push(index_of(name, "primary-key")?);
        }
        key_fields.extend(layout.partition_indices.iter().copied());
        key_fields.sort_unstable();
        key_fields.dedup();
        let mut roles: Vec<Role> = vec![Role::LastNonNull; field_names.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let remove_record_on_delete;
        match engine {
            MergeEngine::PartialUpdate => {
                remove_record_on_delete =
                    option_bool(options, "partial-update.remove-record-on-delete")?;
                for (key, members) in options {
                    let Some(seq_names) = key
                        .strip_prefix("fields.")
                        .and_then(|r| r.strip_suffix(".sequence-group"))
                    else {
                        continue;
                    };
                    let g = groups.len();
                    let mut seq = Vec::new();
                    for name in seq_names.split(',') {
                        let i = index_of(name, key)?;
                        if !value::is_scalar_type(&field_types[i])
                            || field_types[i] == ArrowType::Boolean
                        {
                            return Err(EngineError::invalid(format!(
                                "option '{key}': sequence field '{}' must be a number, date, time or timestamp",
                                field_names[i]
                            )));
                        }
                        roles[i] = Role::GroupSequence(g);
                        seq.push(i);
                    }
                    for name in members.split(',').filter(|m| !m.trim().is_empty()) {
                        let i = index_of(name, key)?;
                        if !matches!(roles[i], Role::LastNonNull) || key_fields.contains(&i) {
                            return Err(EngineError::invalid(format!(
                                "option '{key}': field '{}' is a primary key, a sequence field or in another sequence group",
                                field_names[i]
                            )));
                        }
                        roles[i] = Role::Member(g);
                    }
                    groups.push(seq);
                }
                if remove_record_on_delete && !groups.is_empty() {
                    return Err(EngineError::invalid(
                        "options 'partial-update.remove-record-on-delete' and 'fields.*.sequence-group' cannot be used together",
                    ));
                }
                if let Some(key) = options
                    .keys()
                    .find(|k| k.starts_with("fields.") && k.ends_with(".aggregate-function"))
                {
                    return Err(EngineError::Unsupported(format!(
                        "option '{key}': aggregate functions inside partial-update tables are not supported yet"
                    )));
                }
            }
            _ => {
                remove_record_on_delete =
                    option_bool(options, "aggregation.remove-record-on-delete")?;
                let default = options
                    .get("fields.default-aggregate-function")
                    .map(String::as_str)
                    .unwrap_or("last_non_null_value");
                for (i, name) in field_names.iter().enumerate() {
                    if key_fields.contains(&i) {
                        continue;
                    }
                    // `sequence.field` columns carry the latest value, as in Paimon.
                    let func = if layout.sequence_indices.contains(&i) {
                        AggFunc::LastValue
                    } else {
                        let name_opt = options.get(&format!("fields.{name}.aggregate-function"));
                        AggFunc::parse(name_opt.map(String::as_str).unwrap_or(default), name)?
                    };
                    func.check_type(&layout.schema.fields[i].data_type, &field_types[i], name)?;
                    roles[i] = Role::Agg(AggSpec {
                        func,
                        ignore_retract: option_bool(
                            options,
                            &format!("fields.{name}.ignore-retract"),
                        )?,
                        delimiter: options
                            .get(&format!("fields.{name}.list-agg-delimiter"))
                            .cloned()
                            .unwrap_or_else(|| ",".to_string()),
                        distinct: option_bool(options, &format!("fields.{name}.distinct"))?,
                        equality: if func.is_nested() {
                            Equality::for_type(&field_types[i], name)?
                        } else {
                            None
                        },
                    });
                }
            }
        }
        for &k in &key_fields {
            roles[k] = Role::Key;
        }
        Ok(Some(MergeFunction {
            engine,
            roles,
            groups,
            field_names,
            field_types,
            ignore_delete: ignore_delete(options)?,
            remove_record_on_delete,
        }))
    }

    pub(crate) fn num_fields(&self) -> usize {
        self.roles.len()
    }
}

/// Result of one field for the keys merged so far.
#[derive(Clone, Debug)]
enum Cell {
    /// The value of a version's cell (slot, row), or NULL.
    Pick(Option<(usize, usize)>),
    Value(Scalar),
    /// collect / merge_map: the elements gathered so far, or NULL.
    Nested(Option<Collected>),
}

/// Merged rows being collected, one per key, column by column.
#[derive(Default)]
pub(crate) struct MergedRows {
    cells: Vec<Vec<Cell>>,
    kinds: Vec<i8>,
    /// The newest version of each merged key (its sequence number is the row's).
    pub newest: Vec<(usize, usize)>,
}

impl MergedRows {
    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    pub(crate) fn kinds(&self) -> &[i8] {
        &self.kinds
    }

    /// Builds field `field` of every merged row; `sources` holds that field's
    /// column of every slot.
    pub(crate) fn build_column(
        &self,
        function: &MergeFunction,
        field: usize,
        sources: &[&dyn Array],
    ) -> Result<ArrayRef> {
        let t = &function.field_types[field];
        let cells = self.cells.get(field).map(Vec::as_slice).unwrap_or(&[]);
        if cells.iter().any(|c| matches!(c, Cell::Nested(_))) {
            let rows = cells.iter().map(|c| match c {
                Cell::Nested(Some(c)) => nested::OutRow::Items(&c.items),
                Cell::Pick(Some((s, r))) => nested::OutRow::Copy(*s, *r),
                // A Value never shares a column with nested cells.
                Cell::Nested(None) | Cell::Pick(None) | Cell::Value(_) => nested::OutRow::Null,
            });
            return nested::build(rows, sources);
        }
        if cells.iter().any(|c| matches!(c, Cell::Value(_))) {
            let values = cells
                .iter()
                .map(|c| match c {
                    Cell::Value(v) => Ok(v.clone()),
                    Cell::Pick(None) | Cell::Nested(_) => Ok(Scalar::Null),
                    Cell::Pick(Some((s, r))) => value::read(sources[*s], *r),
                })
                .collect::<Result<Vec<_>>>()?;
            return value::build(t, &values);
        }
        let nulls = new_null_array(t, 1);
        let mut arrays: Vec<&dyn Array> = sources.to_vec();
        arrays.push(nulls.as_ref());
        let null_slot = sources.len();
        let indices: Vec<(usize, usize)> = cells
            .iter()
            .map(|c| match c {
                Cell::Pick(Some(p)) => *p,
                _ => (null_slot, 0),
            })
            .collect();
        Ok(arrow_select::interleave::interleave(&arrays, &indices)?)
    }

    pub(crate) fn clear(&mut self) {
        self.cells.iter_mut().for_each(Vec::clear);
        self.kinds.clear();
        self.newest.clear();
    }
}

/// The fold state of one key.
struct KeyState {
    cells: Vec<Cell>,
    first_seen: Vec<bool>,
    group_seq: Vec<Option<Vec<Scalar>>>,
}

impl MergeFunction {
    fn fresh(&self) -> KeyState {
        KeyState {
            cells: self
                .roles
                .iter()
                .map(|r| match r {
                    Role::Agg(spec) if spec.func.is_nested() => Cell::Nested(None),
                    Role::Agg(spec) if spec.func.computes() => Cell::Value(Scalar::Null),
                    _ => Cell::Pick(None),
                })
                .collect(),
            first_seen: vec![false; self.roles.len()],
            group_seq: vec![None; self.groups.len()],
        }
    }

    fn no_retract(&self, field: usize, func: AggFunc) -> EngineError {
        let name = &self.field_names[field];
        EngineError::invalid(format!(
            "aggregate function '{}' of field '{name}' cannot retract (-U/-D input); set 'fields.{name}.ignore-retract' = 'true' to ignore retractions",
            func.name()
        ))
    }

    /// Combines the versions of one key (oldest first) and appends the
    /// result to `out` (nothing when the key has no row).
    pub(crate) fn merge_key(
        &self,
        versions: &[Version],
        cols: &dyn VersionColumns,
        out: &mut MergedRows,
    ) -> Result<()> {
        let kept: Vec<Version>;
        let versions = if self.ignore_delete {
            kept = versions
                .iter()
                .copied()
                .filter(|v| is_add(v.kind))
                .collect();
            &kept[..]
        } else {
            versions
        };
        let Some(newest) = versions.last() else {
            return Ok(());
        };
        if out.cells.len() != self.roles.len() {
            out.cells = vec![Vec::new(); self.roles.len()];
        }
        let is_pu = self.engine == MergeEngine::PartialUpdate;
        if is_pu && self.groups.is_empty() && !self.remove_record_on_delete {
            if let Some(v) = versions.iter().find(|v| !is_add(v.kind)) {
                return Err(EngineError::invalid(format!(
                    "partial-update tables cannot apply {} rows by default: set 'ignore-delete' = 'true' to ignore them, 'partial-update.remove-record-on-delete' = 'true' to delete rows, or use sequence groups to retract columns",
                    if v.kind == KIND_DELETE { "-D" } else { "-U" }
                )));
            }
        }
        if versions.len() == 1 && is_add(newest.kind) && (!is_pu || self.groups.is_empty()) {
            // One added version merges into itself (sequence groups aside,
            // which skip fields whose sequence is NULL).
            let here = Cell::Pick(Some((newest.slot, newest.row)));
            for column in out.cells.iter_mut() {
                column.push(here.clone());
            }
            out.kinds.push(KIND_INSERT);
            out.newest.push((newest.slot, newest.row));
            return Ok(());
        }
        let any_delete = versions.iter().any(|v| v.kind == KIND_DELETE);
        let (state, kind) =
            if versions.iter().any(|v| is_add(v.kind)) || (is_pu && !self.groups.is_empty()) {
                self.fold(versions, cols)?
            } else if is_pu && !any_delete {
                return Ok(()); // -U without sequence groups: nothing to apply
            } else if self.remove_record_on_delete && any_delete {
                let mut s = self.fresh();
                s.cells = vec![Cell::Pick(Some((newest.slot, newest.row))); self.roles.len()];
                (s, KIND_DELETE)
            } else {
                (self.combine_retractions(versions, cols)?, newest.kind)
            };
        for (field, cell) in state.cells.into_iter().enumerate() {
            out.cells[field].push(match cell {
                Cell::Nested(c) => Cell::Nested(c.map(Collected::without_keys)),
                other => other,
            });
        }
        out.kinds.push(kind);
        out.newest.push((newest.slot, newest.row));
        Ok(())
    }

    fn read(&self, cols: &dyn VersionColumns, v: &Version, field: usize) -> Result<Scalar> {
        value::read(cols.column(v.slot, field), v.row)
    }

    fn cell_value(&self, cols: &dyn VersionColumns, cell: &Cell, field: usize) -> Result<Scalar> {
        match cell {
            Cell::Pick(None) => Ok(Scalar::Null),
            Cell::Pick(Some((s, r))) => value::read(cols.column(*s, field), *r),
            Cell::Value(v) => Ok(v.clone()),
            Cell::Nested(_) => Err(EngineError::internal(
                "a collected ARRAY or MAP is not a single value",
            )),
        }
    }

    /// The row-by-row fold; the result is an insert unless the last event
    /// removed the record (or no version added anything). With
    /// remove-record-on-delete, an insert after a removal in the same merge
    /// starts from nothing; older files merged later still fill its nulls,
    /// as in Paimon (one row cannot carry the removal).
    fn fold(&self, versions: &[Version], cols: &dyn VersionColumns) -> Result<(KeyState, i8)> {
        let mut st = self.fresh();
        let mut kind = KIND_UPDATE_BEFORE;
        for v in versions {
            let add = is_add(v.kind);
            if self.remove_record_on_delete && v.kind == KIND_DELETE {
                st = self.fresh();
                st.cells = vec![Cell::Pick(Some((v.slot, v.row))); self.roles.len()];
                kind = KIND_DELETE;
                continue;
            }
            if self.remove_record_on_delete
                && !add
                && (self.engine == MergeEngine::PartialUpdate || kind == KIND_DELETE)
            {
                continue;
            }
            if add {
                if kind == KIND_DELETE && self.remove_record_on_delete {
                    st = self.fresh();
                }
                kind = KIND_INSERT;
            } else if kind != KIND_INSERT {
                kind = v.kind;
            }
            // Sequence groups: this version's sequence per group.
            let mut group_newer = vec![None; self.groups.len()];
            for (g, seq_fields) in self.groups.iter().enumerate() {
                let cur = seq_fields
                    .iter()
                    .map(|&f| self.read(cols, v, f))
                    .collect::<Result<Vec<_>>>()?;
                if cur.iter().any(Scalar::is_null) {
                    continue; // no sequence: the group is not updated
                }
                let order = match &st.group_seq[g] {
                    None => std::cmp::Ordering::Greater,
                    Some(prev) => compare_seq(&cur, prev),
                };
                group_newer[g] = Some(order);
                if order.is_gt() {
                    st.group_seq[g] = Some(cur);
                }
            }
            let here = Some((v.slot, v.row));
            for (i, role) in self.roles.iter().enumerate() {
                let not_null = !cols.column(v.slot, i).is_null(v.row);
                match role {
                    Role::Key => st.cells[i] = Cell::Pick(here),
                    Role::LastNonNull => {
                        if add && not_null {
                            st.cells[i] = Cell::Pick(here);
                        }
                    }
                    Role::GroupSequence(g) => {
                        if group_newer[*g].is_some_and(|o| o.is_gt()) {
                            st.cells[i] = Cell::Pick(here);
                        }
                    }
                    Role::Member(g) => {
                        if group_newer[*g].is_some_and(|o| o.is_ge()) {
                            st.cells[i] = Cell::Pick(if add { here } else { None });
                        }
                    }
                    Role::Agg(spec) => {
                        if !add {
                            if spec.ignore_retract {
                                continue;
                            }
                            if !spec.func.can_retract() {
                                return Err(self.no_retract(i, spec.func));
                            }
                        }
                        self.agg_step(&mut st, i, spec, add, v, cols)?;
                    }
                }
            }
        }
        Ok((st, kind))
    }

    fn agg_step(
        &self,
        st: &mut KeyState,
        i: usize,
        spec: &AggSpec,
        add: bool,
        v: &Version,
        cols: &dyn VersionColumns,
    ) -> Result<()> {
        let func = spec.func;
        let delimiter = spec.delimiter.as_str();
        let here = Some((v.slot, v.row));
        let not_null = !cols.column(v.slot, i).is_null(v.row);
        let t = &self.field_types[i];
        let name = &self.field_names[i];
        match func {
            AggFunc::LastValue => st.cells[i] = Cell::Pick(if add { here } else { None }),
            AggFunc::LastNonNullValue => {
                if not_null {
                    st.cells[i] = Cell::Pick(if add { here } else { None });
                }
            }
            AggFunc::FirstValue => {
                if !st.first_seen[i] {
                    st.first_seen[i] = true;
                    st.cells[i] = Cell::Pick(here);
                }
            }
            AggFunc::FirstNonNullValue => {
                if matches!(st.cells[i], Cell::Pick(None)) && not_null {
                    st.cells[i] = Cell::Pick(here);
                }
            }
            AggFunc::Collect | AggFunc::MergeMap => {
                let (Some(kind), Some(eq), Cell::Nested(acc)) = (
                    spec.nested_kind(),
                    spec.equality.as_deref(),
                    &mut st.cells[i],
                ) else {
                    return Err(EngineError::internal(format!(
                        "field '{name}' has no collected state"
                    )));
                };
                let input = nested::Input {
                    cols,
                    field: i,
                    slot: v.slot,
                    row: v.row,
                };
                if add {
                    nested::add(acc, kind, eq, &input)?;
                } else {
                    nested::retract(acc, kind, eq, &input)?;
                }
            }
            AggFunc::Min | AggFunc::Max => {
                if !not_null {
                    return Ok(());
                }
                let acc = self.cell_value(cols, &st.cells[i], i)?;
                let input = self.read(cols, v, i)?;
                let better = acc.is_null()
                    || match input.compare(&acc) {
                        Some(o) => {
                            (func == AggFunc::Min && o.is_lt())
                                || (func == AggFunc::Max && o.is_gt())
                        }
                        None => false,
                    };
                if better {
                    st.cells[i] = Cell::Pick(here);
                }
            }
            AggFunc::ListAgg => {
                let Cell::Value(acc) = &st.cells[i] else {
                    return Err(EngineError::internal("aggregate state is not a value"));
                };
                // As Paimon: blank strings add nothing, and a blank
                // accumulator is replaced.
                let next = match (acc, self.read(cols, v, i)?) {
                    (_, Scalar::Null) => acc.clone(),
                    (_, Scalar::Str(b)) if value::is_blank(&b) => acc.clone(),
                    (Scalar::Null, b) => b,
                    (Scalar::Str(a), b) if value::is_blank(a) => b,
                    (Scalar::Str(a), Scalar::Str(b)) => {
                        Scalar::Str(value::listagg(a, &b, delimiter, spec.distinct))
                    }
                    _ => {
                        return Err(EngineError::internal(format!(
                            "field '{name}' holds values of an unexpected type"
                        )))
                    }
                };
                st.cells[i] = Cell::Value(next);
            }
            AggFunc::Sum | AggFunc::Product | AggFunc::BoolAnd | AggFunc::BoolOr => {
                let Cell::Value(acc) = &st.cells[i] else {
                    return Err(EngineError::internal("aggregate state is not a value"));
                };
                let input = self.read(cols, v, i)?;
                let next = if input.is_null() {
                    acc.clone()
                } else if acc.is_null() {
                    if !add && func == AggFunc::Sum {
                        value::negate(t, &input, name)?
                    } else {
                        input
                    }
                } else {
                    match (func, acc, &input) {
                        (AggFunc::Sum, _, _) => value::arith(
                            t,
                            if add { Arith::Add } else { Arith::Sub },
                            acc,
                            &input,
                            name,
                        )?,
                        (AggFunc::Product, _, _) => value::arith(
                            t,
                            if add { Arith::Mul } else { Arith::Div },
                            acc,
                            &input,
                            name,
                        )?,
                        (AggFunc::BoolAnd, Scalar::Bool(a), Scalar::Bool(b)) => {
                            Scalar::Bool(*a && *b)
                        }
                        (AggFunc::BoolOr, Scalar::Bool(a), Scalar::Bool(b)) => {
                            Scalar::Bool(*a || *b)
                        }
                        _ => {
                            return Err(EngineError::internal(format!(
                                "field '{name}' holds values of an unexpected type"
                            )))
                        }
                    }
                };
                st.cells[i] = Cell::Value(next);
            }
        }
        Ok(())
    }

    /// A key whose versions are all retractions: one retraction row that,
    /// applied later, retracts what they would have.
    fn combine_retractions(
        &self,
        versions: &[Version],
        cols: &dyn VersionColumns,
    ) -> Result<KeyState> {
        let mut st = self.fresh();
        for v in versions {
            let here = Some((v.slot, v.row));
            for (i, role) in self.roles.iter().enumerate() {
                match role {
                    Role::Agg(spec) => match spec.func {
                        AggFunc::Sum | AggFunc::Product => {
                            self.agg_step(&mut st, i, spec, true, v, cols)?
                        }
                        AggFunc::LastNonNullValue => {
                            if !cols.column(v.slot, i).is_null(v.row) {
                                st.cells[i] = Cell::Pick(here);
                            }
                        }
                        AggFunc::LastValue => st.cells[i] = Cell::Pick(here),
                        AggFunc::Collect | AggFunc::MergeMap if !spec.ignore_retract => {
                            let (Some(kind), Some(eq), Cell::Nested(acc)) = (
                                spec.nested_kind(),
                                spec.equality.as_deref(),
                                &mut st.cells[i],
                            ) else {
                                return Err(EngineError::internal(format!(
                                    "field '{}' has no collected state",
                                    self.field_names[i]
                                )));
                            };
                            let input = nested::Input {
                                cols,
                                field: i,
                                slot: v.slot,
                                row: v.row,
                            };
                            nested::combine_retraction(acc, kind, eq, &input)?;
                        }
                        f if spec.ignore_retract => {
                            if !f.computes() {
                                st.cells[i] = Cell::Pick(here);
                            }
                        }
                        f => return Err(self.no_retract(i, f)),
                    },
                    _ => st.cells[i] = Cell::Pick(here),
                }
            }
        }
        Ok(st)
    }
}

fn compare_seq(a: &[Scalar], b: &[Scalar]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.compare(y).unwrap_or(std::cmp::Ordering::Equal) {
            std::cmp::Ordering::Equal => continue,
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow_array::{Int32Array, RecordBatch};
    use arrow_schema::{Field, Schema};

    use super::*;

    /// Rows (k, a, b) in one batch, read as slot 0.
    struct Rows(RecordBatch);

    impl VersionColumns for Rows {
        fn column(&self, _slot: usize, field: usize) -> &dyn Array {
            self.0.column(field).as_ref()
        }
    }

    fn rows(a: &[Option<i32>], b: &[Option<i32>]) -> Rows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", ArrowType::Int32, false),
            Field::new("a", ArrowType::Int32, true),
            Field::new("b", ArrowType::Int32, true),
        ]));
        let k = Int32Array::from(vec![1; a.len()]);
        Rows(
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(k),
                    Arc::new(Int32Array::from(a.to_vec())),
                    Arc::new(Int32Array::from(b.to_vec())),
                ],
            )
            .unwrap(),
        )
    }

    fn function(engine: MergeEngine, roles: Vec<Role>, groups: Vec<Vec<usize>>) -> MergeFunction {
        MergeFunction {
            engine,
            roles,
            groups,
            field_names: vec!["k".into(), "a".into(), "b".into()],
            field_types: vec![ArrowType::Int32; 3],
            ignore_delete: false,
            remove_record_on_delete: false,
        }
    }

    fn versions(kinds: &[i8]) -> Vec<Version> {
        kinds
            .iter()
            .enumerate()
            .map(|(row, kind)| Version {
                slot: 0,
                row,
                kind: *kind,
            })
            .collect()
    }

    fn merge(f: &MergeFunction, data: &Rows, kinds: &[i8]) -> Result<(Vec<ArrayRef>, Vec<i8>)> {
        let mut out = MergedRows::default();
        f.merge_key(&versions(kinds), data, &mut out)?;
        let columns = (0..3)
            .map(|i| out.build_column(f, i, &[data.0.column(i).as_ref()]))
            .collect::<Result<Vec<_>>>()?;
        Ok((columns, out.kinds().to_vec()))
    }

    fn agg(func: AggFunc, ignore_retract: bool) -> Role {
        Role::Agg(AggSpec {
            func,
            ignore_retract,
            delimiter: ",".into(),
            distinct: false,
            equality: None,
        })
    }

    #[test]
    fn retractions_alone_combine_into_one_retraction() {
        let f = function(
            MergeEngine::Aggregation,
            vec![Role::Key, agg(AggFunc::Sum, false), agg(AggFunc::Max, true)],
            vec![],
        );
        let data = rows(&[Some(2), Some(3)], &[Some(9), None]);
        let (cols, kinds) = merge(&f, &data, &[KIND_DELETE, KIND_UPDATE_BEFORE]).unwrap();
        assert_eq!(kinds, vec![KIND_UPDATE_BEFORE]);
        // 2 + 3 is what a later merge subtracts.
        assert_eq!(cols[1].as_ref(), &Int32Array::from(vec![5]) as &dyn Array);
        // Mixed with an insert, the retractions apply: -2 - 3 + 10.
        let data = rows(&[Some(2), Some(3), Some(10)], &[None, None, Some(1)]);
        let (cols, kinds) = merge(&f, &data, &[KIND_DELETE, KIND_DELETE, KIND_INSERT]).unwrap();
        assert_eq!(kinds, vec![KIND_INSERT]);
        assert_eq!(cols[1].as_ref(), &Int32Array::from(vec![5]) as &dyn Array);
        assert_eq!(cols[2].as_ref(), &Int32Array::from(vec![1]) as &dyn Array);
    }

    #[test]
    fn functions_without_retraction_refuse_it() {
        let f = function(
            MergeEngine::Aggregation,
            vec![
                Role::Key,
                agg(AggFunc::Max, false),
                agg(AggFunc::Sum, false),
            ],
            vec![],
        );
        let data = rows(&[Some(1), Some(1)], &[Some(1), Some(1)]);
        let err = merge(&f, &data, &[KIND_INSERT, KIND_DELETE])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'max'") && err.contains("fields.a.ignore-retract"),
            "{err}"
        );
    }

    #[test]
    fn sequence_group_replaces_the_group_only_when_newer() {
        // b is the sequence field of group {a}.
        let f = function(
            MergeEngine::PartialUpdate,
            vec![Role::Key, Role::Member(0), Role::GroupSequence(0)],
            vec![vec![2]],
        );
        let data = rows(&[Some(1), Some(2), Some(3)], &[Some(5), Some(4), None]);
        let (cols, kinds) = merge(&f, &data, &[KIND_INSERT; 3]).unwrap();
        assert_eq!(kinds, vec![KIND_INSERT]);
        assert_eq!(cols[1].as_ref(), &Int32Array::from(vec![1]) as &dyn Array);
        assert_eq!(cols[2].as_ref(), &Int32Array::from(vec![5]) as &dyn Array);
    }

    #[test]
    fn ignore_delete_reads_every_key() {
        let mut options = BTreeMap::new();
        assert!(!ignore_delete(&options).unwrap());
        options.insert(
            "partial-update.ignore-delete".to_string(),
            "true".to_string(),
        );
        assert!(ignore_delete(&options).unwrap());
        options.insert("ignore-delete".to_string(), "yes".to_string());
        assert!(ignore_delete(&options).is_err());
    }
}
