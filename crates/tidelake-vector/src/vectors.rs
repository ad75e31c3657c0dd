//! Vectors in Arrow columns (`ARRAY<FLOAT>` is a `List<Float32>`): reading
//! them out and checking them.

use datafusion::arrow::array::{Array, ArrayRef, Float32Array, ListArray};

use crate::error::{Result, VectorError};

/// What a row holds in a vector column.
pub enum Cell<'a> {
    Null,
    Vector(&'a [f32]),
    /// Not a vector of the column's dimension, or with NULL elements.
    Bad(String),
}

/// The vectors of one Arrow column.
pub struct Vectors<'a> {
    list: &'a ListArray,
    values: &'a Float32Array,
    dimension: usize,
}

impl<'a> Vectors<'a> {
    pub fn new(array: &'a ArrayRef, dimension: usize) -> Result<Vectors<'a>> {
        let list = array.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
            VectorError::BadSearch(format!(
                "a vector column must be ARRAY<FLOAT>, not {}",
                array.data_type()
            ))
        })?;
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| {
                VectorError::BadSearch(format!(
                    "a vector column must be ARRAY<FLOAT>, not {}",
                    array.data_type()
                ))
            })?;
        Ok(Vectors {
            list,
            values,
            dimension,
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, row: usize) -> Cell<'a> {
        if self.list.is_null(row) {
            return Cell::Null;
        }
        let offsets = self.list.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        if end - start != self.dimension {
            return Cell::Bad(format!(
                "has {} elements, but the column's dimension is {}",
                end - start,
                self.dimension
            ));
        }
        if self.values.null_count() > 0 && (start..end).any(|i| self.values.is_null(i)) {
            return Cell::Bad("has a NULL element".into());
        }
        let all: &'a [f32] = self.values.values();
        Cell::Vector(&all[start..end])
    }
}

/// Checks a vector to be written: the right length, no NULL element, all
/// elements finite.
pub fn check_written(cell: Cell<'_>, column: &str, table: &str, row: usize) -> Result<()> {
    let problem = match cell {
        Cell::Null => "is NULL (a vector-indexed column needs a vector in every row)".to_string(),
        Cell::Bad(why) => why,
        Cell::Vector(v) => match v.iter().position(|x| !x.is_finite()) {
            None => return Ok(()),
            Some(i) => format!("has a non-finite element ({}) at index {i}", v[i]),
        },
    };
    Err(VectorError::BadVector(format!(
        "the vector in column '{column}' of table '{table}' (row {} of the batch) {problem}; nothing was written",
        row + 1
    )))
}

/// Checks a query vector against the column's dimension.
pub fn check_query(query: &[f32], dimension: usize) -> Result<()> {
    if query.len() != dimension {
        return Err(VectorError::BadSearch(format!(
            "the query vector has {} elements, but the column's dimension is {dimension}",
            query.len()
        )));
    }
    if let Some(i) = query.iter().position(|x| !x.is_finite()) {
        return Err(VectorError::BadSearch(format!(
            "the query vector has a non-finite element at index {i}"
        )));
    }
    Ok(())
}
