//! Reading the generator's `.npy` files (NumPy's format, versions 1 to 3):
//! little-endian `float32`, `int32` or `int64` arrays in C order.

use std::path::Path;

/// An array's values and shape.
pub struct Npy<T> {
    pub values: Vec<T>,
    pub shape: Vec<usize>,
}

impl<T> Npy<T> {
    /// Length of one row (1 for a one-dimensional array).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>().max(1)
    }

    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    pub fn row(&self, i: usize) -> &[T] {
        let n = self.row_len();
        &self.values[i * n..(i + 1) * n]
    }
}

/// Element types the files hold.
pub trait Element: Sized + Copy {
    const DESCR: &'static str;
    fn from_le(bytes: &[u8]) -> Self;
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Element for i32 {
    const DESCR: &'static str = "<i4";
    fn from_le(b: &[u8]) -> Self {
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Element for i64 {
    const DESCR: &'static str = "<i8";
    fn from_le(b: &[u8]) -> Self {
        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

pub fn read<T: Element>(path: &Path) -> Result<Npy<T>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The shape of a file's array, without reading its values.
pub fn shape<T: Element>(path: &Path) -> Result<Vec<usize>, String> {
    let (shape, _) = header_of::<T>(path)?;
    Ok(shape)
}

/// Rows `rows` of a file's array (C order), read alone: the bench writes
/// its table a chunk at a time without holding the whole input.
pub fn read_rows<T: Element>(path: &Path, rows: std::ops::Range<usize>) -> Result<Vec<T>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let (shape, start) = header_of::<T>(path)?;
    let row_len: usize = shape.iter().skip(1).product::<usize>().max(1);
    if rows.end > shape.first().copied().unwrap_or(0) || rows.start > rows.end {
        return Err(format!("{}: rows {rows:?} out of range", path.display()));
    }
    let size = std::mem::size_of::<T>();
    let mut file = std::fs::File::open(path).map_err(err)?;
    file.seek(SeekFrom::Start(
        (start + rows.start * row_len * size) as u64,
    ))
    .map_err(err)?;
    let mut bytes = vec![0u8; (rows.end - rows.start) * row_len * size];
    file.read_exact(&mut bytes).map_err(err)?;
    Ok(bytes.chunks_exact(size).map(T::from_le).collect())
}

/// A file's shape and the offset of its first value.
fn header_of<T: Element>(path: &Path) -> Result<(Vec<usize>, usize), String> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_header::<T>(&head).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse<T: Element>(bytes: &[u8]) -> Result<Npy<T>, String> {
    let (shape, start) = parse_header::<T>(bytes)?;
    let count: usize = shape.iter().product();
    let size = std::mem::size_of::<T>();
    let data = &bytes[start..];
    if data.len() != count * size {
        return Err(format!(
            "{} data bytes for shape {shape:?} of {size}-byte values",
            data.len()
        ));
    }
    let values = data.chunks_exact(size).map(T::from_le).collect();
    Ok(Npy { values, shape })
}

/// The shape in a file's header and the offset of its first value.
fn parse_header<T: Element>(bytes: &[u8]) -> Result<(Vec<usize>, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let value_of = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!("the .npy header has no '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = value_of("descr")?;
    if !descr.starts_with(&format!("'{}'", T::DESCR)) {
        return Err(format!(
            "holds {}, expected '{}'",
            descr.split(',').next().unwrap_or(""),
            T::DESCR
        ));
    }
    if !value_of("fortran_order")?.starts_with("False") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = value_of("shape")?;
    let close = shape_text.find(')').ok_or("bad shape in the .npy header")?;
    let shape = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape '{s}'")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((shape, start + header_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_numpy_arrays() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a: Npy<f32> = parse(&file("<f4", "(2, 3)", &data)).unwrap();
        assert_eq!((a.rows(), a.row_len()), (2, 3));
        assert_eq!(a.row(1), &[4.0, 5.0, 6.0]);
        let ids: Vec<u8> = [7i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
        let b: Npy<i64> = parse(&file("<i8", "(2,)", &ids)).unwrap();
        assert_eq!((b.values.clone(), b.row_len()), (vec![7, -1], 1));
        assert!(parse::<i32>(&file("<i8", "(2,)", &ids)).is_err());
        assert!(parse::<i64>(&file("<i8", "(3,)", &ids)).is_err());
    }

    #[test]
    fn reads_rows_of_a_file_alone() {
        let data: Vec<u8> = (0..12).flat_map(|x| (x as f32).to_le_bytes()).collect();
        let dir = std::env::temp_dir().join(format!("npy-rows-{}", std::process::id()));
        std::fs::write(&dir, file("<f4", "(4, 3)", &data)).unwrap();
        assert_eq!(shape::<f32>(&dir).unwrap(), vec![4, 3]);
        assert_eq!(
            read_rows::<f32>(&dir, 1..3).unwrap(),
            vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        );
        assert!(read_rows::<f32>(&dir, 3..5).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
