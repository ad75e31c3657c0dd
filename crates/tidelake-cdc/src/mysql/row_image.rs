//! Row images of a binlog ROWS event read straight into values of the
//! table's columns.
//!
//! mysql_common's `BinlogRow` builds a `Column` (schema, table and column
//! names, each allocated) for every column of every row, and parses the
//! TABLE_MAP's optional metadata again for every row: most of the CPU of
//! applying a large transaction went to the allocator. Here the TABLE_MAP is
//! read once per event into an [`ImageLayout`], and each value is decoded by
//! mysql_common's `BinlogValue` and handed on at once.

use mysql_common::binlog::events::{OptionalMetaExtractor, TableMapEvent};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

/// One binlog column as the TABLE_MAP describes it.
struct ColumnCodec<'a> {
    column_type: ColumnType,
    metadata: &'a [u8],
    unsigned: bool,
}

/// The columns a rows event's images hold (one of its two bitmaps), with
/// their count: the size of each image's NULL bitmap.
pub(crate) struct ImageColumns {
    present: Vec<bool>,
    count: usize,
}

impl ImageColumns {
    pub fn new(bits: impl IntoIterator<Item = bool>) -> ImageColumns {
        let present: Vec<bool> = bits.into_iter().collect();
        let count = present.iter().filter(|p| **p).count();
        ImageColumns { present, count }
    }
}

/// How the values of a table's row images are laid out and read.
pub(crate) struct ImageLayout<'a> {
    columns: Vec<ColumnCodec<'a>>,
}

impl<'a> ImageLayout<'a> {
    /// The layout of `tme`'s columns; `extractor` holds its optional
    /// metadata (the signedness of numeric columns).
    pub fn new(
        tme: &'a TableMapEvent<'_>,
        extractor: &OptionalMetaExtractor<'_>,
    ) -> Result<ImageLayout<'a>, String> {
        let count = tme.columns_count() as usize;
        let mut signedness = extractor.iter_signedness();
        let mut columns = Vec::with_capacity(count);
        for i in 0..count {
            let column_type = match tme.get_column_type(i) {
                Ok(Some(column_type)) => column_type,
                Ok(None) => return Err(format!("the TABLE_MAP has no type for column {i}")),
                Err(e) => return Err(format!("the TABLE_MAP's type of column {i}: {e}")),
            };
            // One signedness bit per numeric column, in column order.
            let unsigned = column_type.is_numeric_type() && signedness.next().unwrap_or(false);
            columns.push(ColumnCodec {
                column_type,
                metadata: tme.get_column_metadata(i).unwrap_or(&[]),
                unsigned,
            });
        }
        Ok(ImageLayout { columns })
    }

    /// Reads one row image of the columns `image` marks from `buf`: its
    /// NULL bitmap, then each non-NULL value, handed to `each` with the
    /// binlog column's index (NULLs are not handed on).
    pub fn read(
        &self,
        buf: &mut ParseBuf<'a>,
        image: &ImageColumns,
        mut each: impl FnMut(usize, BinlogValue<'a>) -> Result<(), String>,
    ) -> Result<(), String> {
        let nulls = buf
            .checked_eat(image.count.div_ceil(8))
            .ok_or("a row image ends inside its NULL bitmap")?;
        let mut image_index = 0;
        for (i, column) in self.columns.iter().enumerate() {
            if !image.present.get(i).copied().unwrap_or(false) {
                continue;
            }
            let is_null = nulls[image_index / 8] & (1 << (image_index % 8)) != 0;
            image_index += 1;
            if is_null {
                continue;
            }
            let context = (column.column_type, column.metadata, column.unsigned, false);
            let value: BinlogValue<'a> = buf
                .parse(context)
                .map_err(|e| format!("column {}: {e}", i + 1))?;
            each(i, value)?;
        }
        Ok(())
    }
}
