//! `collect` (ARRAY fields) and `merge_map` (MAP fields): results built from
//! the elements (map entries) of the versions' cells.
//!
//! An accumulated value is a list of references to elements in the child
//! arrays of the versions' columns, so elements of any type (nested ones
//! too) are never decoded: the output is gathered with `interleave`.
//! Equality of elements (map keys) is equality of their encoding in Arrow's
//! row format, computed only when an operation needs it (distinct, map keys,
//! retraction). That is close to Java's `equals` on the values: NULL
//! equals NULL, 0.0 differs from -0.0, a NaN equals a NaN of the same bits.
//!
//! Semantics, as Paimon's `FieldCollectAgg` / `FieldMergeMapAgg`:
//! - collect: concatenation in sequence order; with `distinct` every value
//!   once, in order of first appearance (Java's set has no defined order).
//!   NULL elements are elements. A NULL input adds nothing. A key's only
//!   version is never merged (as in Java), so it keeps repeated values.
//! - merge_map: entries of later maps replace those with equal keys; a key
//!   keeps the position it first appeared at.
//! - retraction: collect removes one occurrence (the first) per retracted
//!   element, merge_map removes the retracted keys; nothing happens to a
//!   NULL accumulator (the retraction is lost, as Paimon documents).
//!
//! Additions are associative (so partial merges at flush and compaction are
//! exact); retractions are exact only when merged with every older version,
//! which is Paimon's "best effort" too.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, MapArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType as ArrowType;

use super::VersionColumns;
use crate::error::{EngineError, Result};

/// An element: (slot, index into the child array of that slot's column).
pub(crate) type ElementRef = (usize, usize);

/// Row-format encoding of one element (or map key).
type ElementKey = Box<[u8]>;

/// Which of the two functions, with its option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NestedKind {
    Collect { distinct: bool },
    MergeMap,
}

/// Compares elements (collect) or map keys (merge_map) of one field.
#[derive(Debug)]
pub(crate) struct Equality {
    converter: RowConverter,
}

impl Equality {
    /// For a List (its elements) or Map (its keys) field; `None` for other types.
    pub(crate) fn for_type(t: &ArrowType, field: &str) -> Result<Option<Arc<Equality>>> {
        let compared = match t {
            ArrowType::List(element) => element.data_type().clone(),
            ArrowType::Map(entries, _) => match entries.data_type() {
                ArrowType::Struct(fields) if fields.len() == 2 => fields[0].data_type().clone(),
                other => {
                    return Err(EngineError::internal(format!(
                        "field '{field}' has map entries of type {other}"
                    )))
                }
            },
            _ => return Ok(None),
        };
        let sort = vec![SortField::new(compared.clone())];
        if !RowConverter::supports_fields(&sort) {
            return Err(EngineError::Unsupported(format!(
                "field '{field}': values of type {compared} cannot be compared by collect or merge_map"
            )));
        }
        Ok(Some(Arc::new(Equality {
            converter: RowConverter::new(sort)?,
        })))
    }

    /// Keys of `child[range]`.
    fn keys(&self, child: &ArrayRef, range: Range<usize>) -> Result<Vec<ElementKey>> {
        let rows = self
            .converter
            .convert_columns(&[child.slice(range.start, range.len())])?;
        Ok(rows.iter().map(|r| Box::from(r.as_ref())).collect())
    }
}

/// The accumulated ARRAY or MAP of one key.
#[derive(Clone, Debug, Default)]
pub(crate) struct Collected {
    pub items: Vec<ElementRef>,
    /// Keys of `items`, index by index, once an operation needed them.
    keys: Option<Vec<ElementKey>>,
    /// Distinct collect and merge_map: where each key is in `items` (keys
    /// are unique then), kept across additions so that a key with many
    /// versions merges in linear time.
    position: Option<HashMap<ElementKey, usize>>,
}

impl Collected {
    /// Drops what only the fold needs.
    pub(crate) fn without_keys(self) -> Collected {
        Collected {
            items: self.items,
            keys: None,
            position: None,
        }
    }
}

/// The child array whose elements are compared: a list's values, a map's keys.
fn compared_child(array: &dyn Array) -> Result<&ArrayRef> {
    if let Some(list) = array.as_list_opt::<i32>() {
        return Ok(list.values());
    }
    if let Some(map) = array.as_map_opt() {
        return Ok(map.keys());
    }
    Err(EngineError::internal(format!(
        "collect or merge_map over a {} column",
        array.data_type()
    )))
}

/// Element positions of row `row` of a List or Map column; `None` when NULL.
fn range_of(array: &dyn Array, row: usize) -> Result<Option<Range<usize>>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let offsets = if let Some(list) = array.as_list_opt::<i32>() {
        list.value_offsets()
    } else if let Some(map) = array.as_map_opt() {
        map.value_offsets()
    } else {
        return Err(EngineError::internal(format!(
            "collect or merge_map over a {} column",
            array.data_type()
        )));
    };
    let start = usize::try_from(offsets[row]).unwrap_or(0);
    let end = usize::try_from(offsets[row + 1]).unwrap_or(start);
    Ok(Some(start..end))
}

/// Keys of `items`, converting runs of adjacent elements of one slot at once.
fn keys_of(
    eq: &Equality,
    cols: &dyn VersionColumns,
    field: usize,
    items: &[ElementRef],
) -> Result<Vec<ElementKey>> {
    let mut keys = Vec::with_capacity(items.len());
    let mut i = 0;
    while i < items.len() {
        let (slot, start) = items[i];
        let mut end = start + 1;
        let mut j = i + 1;
        while j < items.len() && items[j] == (slot, end) {
            end += 1;
            j += 1;
        }
        let array = cols.column(slot, field);
        keys.extend(eq.keys(compared_child(array)?, start..end)?);
        i = j;
    }
    Ok(keys)
}

/// One version's cell, as the fold sees it.
pub(crate) struct Input<'a> {
    pub cols: &'a dyn VersionColumns,
    pub field: usize,
    pub slot: usize,
    pub row: usize,
}

impl Input<'_> {
    /// The cell's elements and, when `eq` is given, their keys; `None` when NULL.
    fn elements(&self, eq: Option<&Equality>) -> Result<Option<Collected>> {
        let array = self.cols.column(self.slot, self.field);
        let Some(range) = range_of(array, self.row)? else {
            return Ok(None);
        };
        let keys = match eq {
            Some(eq) => Some(eq.keys(compared_child(array)?, range.clone())?),
            None => None,
        };
        Ok(Some(Collected {
            items: range.map(|j| (self.slot, j)).collect(),
            keys,
            position: None,
        }))
    }
}

fn ensure_keys<'c>(
    acc: &'c mut Collected,
    eq: &Equality,
    input: &Input<'_>,
) -> Result<&'c mut Vec<ElementKey>> {
    if acc.keys.is_none() {
        acc.keys = Some(keys_of(eq, input.cols, input.field, &acc.items)?);
    }
    acc.keys
        .as_mut()
        .ok_or_else(|| EngineError::internal("collected keys missing"))
}

/// Adds `input` to `acc` (Paimon's `agg`).
pub(crate) fn add(
    acc: &mut Option<Collected>,
    kind: NestedKind,
    eq: &Equality,
    input: &Input<'_>,
) -> Result<()> {
    let dedupe = matches!(kind, NestedKind::Collect { distinct: true });
    let appends = matches!(kind, NestedKind::Collect { distinct: false });
    match acc {
        None => {
            let Some(fresh) = input.elements(dedupe.then_some(eq))? else {
                return Ok(());
            };
            // Even a first array loses its repeated values; a first map is
            // taken as it is (Paimon's `agg(null, map)`).
            *acc = Some(if dedupe { unique(fresh, kind)? } else { fresh });
        }
        Some(c) if appends => {
            let with_keys = c.keys.is_some().then_some(eq);
            let Some(new) = input.elements(with_keys)? else {
                return Ok(());
            };
            c.items.extend(new.items);
            if let (Some(all), Some(new)) = (&mut c.keys, new.keys) {
                all.extend(new);
            }
        }
        Some(c) => {
            let Some(new) = input.elements(Some(eq))? else {
                return Ok(());
            };
            ensure_keys(c, eq, input)?;
            if c.position.is_none() {
                *c = unique(std::mem::take(c), kind)?;
            }
            absorb(c, new, kind)?;
        }
    }
    Ok(())
}

/// `c` with unique keys: the first of equal values (collect), or the last
/// value at the first position of equal keys (merge_map).
fn unique(c: Collected, kind: NestedKind) -> Result<Collected> {
    let mut out = Collected {
        items: Vec::with_capacity(c.items.len()),
        keys: Some(Vec::with_capacity(c.items.len())),
        position: Some(HashMap::with_capacity(c.items.len())),
    };
    absorb(&mut out, c, kind)?;
    Ok(out)
}

/// Adds `new` (with keys) to `acc` (with keys and positions).
fn absorb(acc: &mut Collected, new: Collected, kind: NestedKind) -> Result<()> {
    let missing = || EngineError::internal("collected keys missing");
    let (Some(keys), Some(position), Some(new_keys)) =
        (acc.keys.as_mut(), acc.position.as_mut(), new.keys)
    else {
        return Err(missing());
    };
    if new_keys.len() != new.items.len() {
        return Err(missing());
    }
    for (item, key) in new.items.into_iter().zip(new_keys) {
        match position.get(&key) {
            Some(&p) => {
                if kind == NestedKind::MergeMap {
                    acc.items[p] = item;
                }
            }
            None => {
                position.insert(key.clone(), acc.items.len());
                acc.items.push(item);
                keys.push(key);
            }
        }
    }
    Ok(())
}

/// Retracts `input` from `acc` (Paimon's `retract`).
pub(crate) fn retract(
    acc: &mut Option<Collected>,
    kind: NestedKind,
    eq: &Equality,
    input: &Input<'_>,
) -> Result<()> {
    let Some(c) = acc else {
        return Ok(()); // nothing to retract from: the retraction is lost
    };
    let Some(Collected {
        keys: Some(retracted),
        ..
    }) = input.elements(Some(eq))?
    else {
        return Ok(());
    };
    let keys = std::mem::take(ensure_keys(c, eq, input)?);
    let items = std::mem::take(&mut c.items);
    let mut kept_items = Vec::with_capacity(items.len());
    let mut kept_keys = Vec::with_capacity(items.len());
    match kind {
        NestedKind::Collect { .. } => {
            // One occurrence per retracted element, the first ones.
            let mut pending: HashMap<ElementKey, usize> = HashMap::new();
            for key in retracted {
                *pending.entry(key).or_default() += 1;
            }
            for (item, key) in items.into_iter().zip(keys) {
                match pending.get_mut(&key) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => {
                        kept_items.push(item);
                        kept_keys.push(key);
                    }
                }
            }
        }
        NestedKind::MergeMap => {
            let gone: HashSet<ElementKey> = retracted.into_iter().collect();
            for (item, key) in items.into_iter().zip(keys) {
                if !gone.contains(&key) {
                    kept_items.push(item);
                    kept_keys.push(key);
                }
            }
        }
    }
    c.items = kept_items;
    c.keys = Some(kept_keys);
    // Positions moved; rebuilt by the next addition that needs them.
    c.position = None;
    Ok(())
}

/// Combines retractions of a key that has no addition into one retraction
/// that later merges apply like the originals: the concatenation of the
/// retracted arrays (removing each occurrence is removing them one by one),
/// the union of the retracted map keys.
pub(crate) fn combine_retraction(
    acc: &mut Option<Collected>,
    kind: NestedKind,
    eq: &Equality,
    input: &Input<'_>,
) -> Result<()> {
    let as_addition = match kind {
        NestedKind::Collect { .. } => NestedKind::Collect { distinct: false },
        NestedKind::MergeMap => NestedKind::MergeMap,
    };
    add(acc, as_addition, eq, input)
}

/// What one output row of an ARRAY or MAP field holds.
pub(crate) enum OutRow<'a> {
    Null,
    /// The cell (slot, row) as it is.
    Copy(usize, usize),
    Items(&'a [ElementRef]),
}

/// Builds an ARRAY or MAP column from `rows`; `sources` holds the field's
/// column of every slot.
pub(crate) fn build<'a>(
    rows: impl Iterator<Item = OutRow<'a>>,
    sources: &[&dyn Array],
) -> Result<ArrayRef> {
    let first = sources
        .first()
        .ok_or_else(|| EngineError::internal("no source columns to build from"))?;
    let t = first.data_type().clone();
    let mut indices: Vec<ElementRef> = Vec::new();
    let mut offsets: Vec<i32> = vec![0];
    let mut valid: Vec<bool> = Vec::new();
    let too_long = || EngineError::invalid("a collected ARRAY or MAP column exceeds 2^31 elements");
    for row in rows {
        match row {
            OutRow::Null => valid.push(false),
            OutRow::Copy(slot, r) => {
                let array = sources
                    .get(slot)
                    .ok_or_else(|| EngineError::internal("element of an unknown slot"))?;
                match range_of(*array, r)? {
                    None => valid.push(false),
                    Some(range) => {
                        indices.extend(range.map(|j| (slot, j)));
                        valid.push(true);
                    }
                }
            }
            OutRow::Items(items) => {
                indices.extend_from_slice(items);
                valid.push(true);
            }
        }
        offsets.push(i32::try_from(indices.len()).map_err(|_| too_long())?);
    }
    let nulls = valid
        .iter()
        .any(|v| !v)
        .then(|| NullBuffer::from(valid.clone()));
    // Offsets start at 0 and never decrease, as OffsetBuffer requires.
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    match &t {
        ArrowType::List(field) => {
            let children: Vec<&dyn Array> = sources
                .iter()
                .map(|a| compared_child(*a).map(|c| c.as_ref()))
                .collect::<Result<_>>()?;
            let values = arrow_select::interleave::interleave(&children, &indices)?;
            Ok(Arc::new(ListArray::try_new(
                field.clone(),
                offsets,
                values,
                nulls,
            )?))
        }
        ArrowType::Map(field, sorted) => {
            let children: Vec<&dyn Array> = sources
                .iter()
                .map(|a| {
                    a.as_map_opt()
                        .map(|m| m.entries() as &dyn Array)
                        .ok_or_else(|| {
                            EngineError::internal(format!(
                                "merge_map over a {} column",
                                a.data_type()
                            ))
                        })
                })
                .collect::<Result<_>>()?;
            let entries = arrow_select::interleave::interleave(&children, &indices)?;
            let entries = entries
                .as_struct_opt()
                .cloned()
                .ok_or_else(|| EngineError::internal("map entries are not a struct"))?;
            Ok(Arc::new(MapArray::try_new(
                field.clone(),
                offsets,
                entries,
                nulls,
                *sorted,
            )?))
        }
        other => Err(EngineError::internal(format!(
            "collect or merge_map output of type {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder};
    use arrow_array::types::Int32Type;

    use super::*;

    /// Slots of one field (field 0).
    struct Slots(Vec<ArrayRef>);

    impl VersionColumns for Slots {
        fn column(&self, slot: usize, _field: usize) -> &dyn Array {
            self.0[slot].as_ref()
        }
    }

    fn lists(rows: Vec<Option<Vec<Option<i32>>>>) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(rows))
    }

    fn input(slots: &Slots, slot: usize, row: usize) -> Input<'_> {
        Input {
            cols: slots,
            field: 0,
            slot,
            row,
        }
    }

    /// The built column's rows as vectors.
    fn rows_of(array: &ArrayRef) -> Vec<Option<Vec<Option<i32>>>> {
        let list = array.as_list::<i32>();
        (0..list.len())
            .map(|r| {
                (!list.is_null(r)).then(|| {
                    list.value(r)
                        .as_primitive::<Int32Type>()
                        .iter()
                        .collect::<Vec<_>>()
                })
            })
            .collect()
    }

    fn fold(
        slots: &Slots,
        kind: NestedKind,
        steps: &[(bool, usize, usize)],
    ) -> Option<Vec<Option<i32>>> {
        let eq = Equality::for_type(slots.0[0].data_type(), "f")
            .unwrap()
            .unwrap();
        let mut acc = None;
        for &(is_add, slot, row) in steps {
            let i = input(slots, slot, row);
            if is_add {
                add(&mut acc, kind, &eq, &i).unwrap();
            } else {
                retract(&mut acc, kind, &eq, &i).unwrap();
            }
        }
        let sources: Vec<&dyn Array> = slots.0.iter().map(|a| a.as_ref()).collect();
        let out = match &acc {
            Some(c) => OutRow::Items(&c.items),
            None => OutRow::Null,
        };
        rows_of(&build(std::iter::once(out), &sources).unwrap())
            .pop()
            .unwrap()
    }

    #[test]
    fn collect_concatenates_across_slots_and_retracts_first_occurrences() {
        let slots = Slots(vec![
            lists(vec![Some(vec![Some(1), None, Some(2)]), None]),
            lists(vec![Some(vec![]), Some(vec![Some(2), Some(1), Some(1)])]),
        ]);
        let all = NestedKind::Collect { distinct: false };
        assert_eq!(
            fold(&slots, all, &[(true, 0, 0), (true, 1, 1), (true, 0, 1)]),
            Some(vec![Some(1), None, Some(2), Some(2), Some(1), Some(1)])
        );
        // Retracting [2, 1, 1] from [1, NULL, 2, 2, 1, 1, 1, NULL, 2] removes
        // the first 2 and the first two 1s.
        assert_eq!(
            fold(
                &slots,
                all,
                &[(true, 0, 0), (true, 1, 1), (true, 0, 0), (false, 1, 1)]
            ),
            Some(vec![None, Some(2), Some(1), Some(1), None, Some(2)])
        );
        // Nothing to retract from: the retraction is lost.
        assert_eq!(
            fold(&slots, all, &[(false, 0, 0), (true, 1, 1)]),
            Some(vec![Some(2), Some(1), Some(1)])
        );
        // A NULL input adds nothing; an empty one makes the result non-NULL.
        assert_eq!(fold(&slots, all, &[(true, 0, 1)]), None);
        assert_eq!(
            fold(&slots, all, &[(true, 0, 1), (true, 1, 0)]),
            Some(vec![])
        );
    }

    #[test]
    fn distinct_collect_keeps_first_appearances() {
        let slots = Slots(vec![
            lists(vec![Some(vec![Some(3), Some(3), None, None])]),
            lists(vec![Some(vec![None, Some(1), Some(3)])]),
        ]);
        let distinct = NestedKind::Collect { distinct: true };
        assert_eq!(
            fold(&slots, distinct, &[(true, 0, 0)]),
            Some(vec![Some(3), None])
        );
        assert_eq!(
            fold(&slots, distinct, &[(true, 0, 0), (true, 1, 0)]),
            Some(vec![Some(3), None, Some(1)])
        );
        assert_eq!(
            fold(
                &slots,
                distinct,
                &[(true, 1, 0), (false, 0, 0), (true, 0, 0)]
            ),
            Some(vec![Some(1), Some(3), None])
        );
    }

    type Entries<'a> = &'a [(&'a str, Option<i32>)];

    fn maps(rows: &[Option<Entries<'_>>]) -> ArrayRef {
        let mut b = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        for row in rows {
            match row {
                Some(entries) => {
                    for (k, v) in *entries {
                        b.keys().append_value(k);
                        b.values().append_option(*v);
                    }
                    b.append(true).unwrap();
                }
                None => b.append(false).unwrap(),
            }
        }
        Arc::new(b.finish())
    }

    #[test]
    fn merge_map_replaces_values_in_place_and_retracts_keys() {
        let slots = Slots(vec![
            maps(&[Some(&[("a", Some(1)), ("b", Some(2))]), None]),
            maps(&[
                Some(&[("c", None), ("a", Some(9))]),
                Some(&[("b", Some(0))]),
            ]),
        ]);
        let eq = Equality::for_type(slots.0[0].data_type(), "m")
            .unwrap()
            .unwrap();
        let mut acc = None;
        for (slot, row) in [(0, 0), (0, 1), (1, 0)] {
            add(
                &mut acc,
                NestedKind::MergeMap,
                &eq,
                &input(&slots, slot, row),
            )
            .unwrap();
        }
        let mut retracted = acc.clone();
        retract(
            &mut retracted,
            NestedKind::MergeMap,
            &eq,
            &input(&slots, 1, 1),
        )
        .unwrap();
        let sources: Vec<&dyn Array> = slots.0.iter().map(|a| a.as_ref()).collect();
        let rows = [acc, retracted, None];
        let out = rows.iter().map(|c| match c {
            Some(c) => OutRow::Items(&c.items),
            None => OutRow::Null,
        });
        let built = build(out.chain([OutRow::Copy(1, 1)]), &sources).unwrap();
        let map = built.as_map();
        let entries = |r: usize| -> Vec<(String, Option<i32>)> {
            let e = map.value(r);
            let keys = e.column(0).as_string::<i32>();
            let values = e.column(1).as_primitive::<Int32Type>();
            (0..e.len())
                .map(|i| (keys.value(i).to_string(), values.iter().nth(i).flatten()))
                .collect()
        };
        let s = |k: &str, v: Option<i32>| (k.to_string(), v);
        assert_eq!(
            entries(0),
            vec![s("a", Some(9)), s("b", Some(2)), s("c", None)]
        );
        assert_eq!(entries(1), vec![s("a", Some(9)), s("c", None)]);
        assert!(map.is_null(2));
        assert_eq!(entries(3), vec![s("b", Some(0))]);
    }
}
