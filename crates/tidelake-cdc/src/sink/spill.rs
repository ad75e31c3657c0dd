//! The latest image of every key an uncommitted group wrote, which later
//! changes of the group with unchanged (TOAST) values are completed from.
//!
//! Up to a limit the images are held in memory; past it they go to an
//! unnamed temporary file (gone with the process, a crash leaves nothing
//! behind), and memory keeps only an index from a 64-bit hash of the key to
//! the newest record with that hash. Records of keys with the same hash are
//! chained, newest first, each naming its key, so a collision costs a read,
//! never a wrong image. A source transaction updating a million rows then
//! holds tens of bytes per key in memory instead of the rows.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::{CdcError, Result};
use crate::event::CdcValue;

/// A key's latest image in the group: `None` when it was deleted.
pub(crate) type Image = Option<Vec<CdcValue>>;

/// No earlier record with the same hash.
const END: u64 = u64::MAX;

pub(crate) struct ImageStore {
    /// Whether images are kept at all (not when no change can need one).
    enabled: bool,
    memory: HashMap<String, Image>,
    /// Images held in memory before new keys go to the file.
    limit: usize,
    /// Where the file is made (the OS temporary directory when `None`).
    dir: Option<PathBuf>,
    spill: Option<Spill>,
}

struct Spill {
    file: BufWriter<File>,
    /// Bytes written: the next record's offset.
    len: u64,
    /// Whether records sit in the buffer, not yet readable from the file.
    unflushed: bool,
    /// Key hash -> offset of the newest record of a key with that hash.
    index: HashMap<u64, u64>,
    keys: usize,
}

fn io(context: &str, source: std::io::Error) -> CdcError {
    CdcError::Io {
        context: format!("image spill file: {context}"),
        source,
    }
}

fn hash(key: &str) -> u64 {
    // SipHash with fixed keys: the index lives as long as the file.
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl ImageStore {
    pub fn new(limit: usize, dir: Option<PathBuf>, enabled: bool) -> ImageStore {
        ImageStore {
            enabled,
            memory: HashMap::new(),
            limit,
            dir,
            spill: None,
        }
    }

    /// Keys whose image lives in the file (for tests and progress).
    pub fn spilled(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.keys)
    }

    /// The key's latest image in the group; `None` if the group has not
    /// written the key.
    pub fn get(&mut self, key: &str) -> Result<Option<Image>> {
        if let Some(image) = self.memory.get(key) {
            return Ok(Some(image.clone()));
        }
        match self.spill.as_mut() {
            Some(spill) => spill.get(key),
            None => Ok(None),
        }
    }

    /// Whether the group wrote the key.
    pub fn contains(&mut self, key: &str) -> Result<bool> {
        if self.memory.contains_key(key) {
            return Ok(true);
        }
        match self.spill.as_mut() {
            // Most keys of a large transaction are written once: their
            // hash is not in the index and nothing is read.
            Some(spill) if spill.index.contains_key(&hash(key)) => Ok(spill.get(key)?.is_some()),
            _ => Ok(false),
        }
    }

    pub fn insert(&mut self, key: String, image: Image) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.spill.is_none()
            && (self.memory.len() < self.limit || self.memory.contains_key(&key))
        {
            self.memory.insert(key, image);
            return Ok(());
        }
        if let Some(slot) = self.memory.get_mut(&key) {
            *slot = image;
            return Ok(());
        }
        if self.spill.is_none() {
            let file = match &self.dir {
                Some(dir) => tempfile::tempfile_in(dir),
                None => tempfile::tempfile(),
            }
            .map_err(|e| io("creating it", e))?;
            tracing::info!(
                images = self.memory.len(),
                "a large uncommitted group: images spill to a temporary file"
            );
            self.spill = Some(Spill {
                file: BufWriter::with_capacity(1 << 16, file),
                len: 0,
                unflushed: false,
                index: HashMap::new(),
                keys: 0,
            });
        }
        match self.spill.as_mut() {
            Some(spill) => spill.append(&key, &image),
            None => Ok(()),
        }
    }

    /// Every image rewritten by `f` (the table's columns changed).
    pub fn remap(&mut self, f: impl Fn(&[CdcValue]) -> Vec<CdcValue>) -> Result<()> {
        for image in self.memory.values_mut().flatten() {
            *image = f(image);
        }
        let Some(old) = self.spill.take() else {
            return Ok(());
        };
        let mut old = old;
        old.flush()?;
        let file = match &self.dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(|e| io("creating it", e))?;
        let mut new = Spill {
            file: BufWriter::with_capacity(1 << 16, file),
            len: 0,
            unflushed: false,
            index: HashMap::new(),
            keys: 0,
        };
        let heads: Vec<u64> = old.index.values().copied().collect();
        for head in heads {
            // The newest record of each key in the chain wins.
            let mut seen = Vec::new();
            let mut offset = head;
            while offset != END {
                let (prev, key, image) = old.read(offset)?;
                if !seen.contains(&key) {
                    new.append(&key, &image.map(|row| f(&row)))?;
                    seen.push(key);
                }
                offset = prev;
            }
        }
        self.spill = Some(new);
        Ok(())
    }

    /// Forgets every image (the group was committed or dropped).
    pub fn clear(&mut self) {
        self.memory.clear();
        self.spill = None;
    }
}

impl Spill {
    fn flush(&mut self) -> Result<()> {
        if self.unflushed {
            self.file.flush().map_err(|e| io("writing", e))?;
            self.unflushed = false;
        }
        Ok(())
    }

    fn append(&mut self, key: &str, image: &Image) -> Result<()> {
        let h = hash(key);
        let prev = self.index.get(&h).copied().unwrap_or(END);
        let mut record = Vec::with_capacity(64);
        record.extend(prev.to_le_bytes());
        record.extend((key.len() as u32).to_le_bytes());
        record.extend(key.as_bytes());
        match image {
            None => record.push(0),
            Some(row) => {
                record.push(1);
                record.extend((row.len() as u32).to_le_bytes());
                for value in row {
                    encode(value, &mut record);
                }
            }
        }
        let offset = self.len;
        self.file
            .write_all(&(record.len() as u32).to_le_bytes())
            .and_then(|()| self.file.write_all(&record))
            .map_err(|e| io("writing", e))?;
        self.len += 4 + record.len() as u64;
        self.unflushed = true;
        if self.index.insert(h, offset).is_none() || !self.chain_has(prev, key)? {
            self.keys += 1;
        }
        Ok(())
    }

    /// Whether the chain from `offset` holds `key` (a key written again).
    fn chain_has(&mut self, mut offset: u64, key: &str) -> Result<bool> {
        while offset != END {
            let (prev, found, _) = self.read(offset)?;
            if found == key {
                return Ok(true);
            }
            offset = prev;
        }
        Ok(false)
    }

    fn get(&mut self, key: &str) -> Result<Option<Image>> {
        let Some(&head) = self.index.get(&hash(key)) else {
            return Ok(None);
        };
        let mut offset = head;
        while offset != END {
            let (prev, found, image) = self.read(offset)?;
            if found == key {
                return Ok(Some(image));
            }
            offset = prev;
        }
        Ok(None)
    }

    /// The record at `offset`: the previous offset of its chain, its key
    /// and image.
    fn read(&mut self, offset: u64) -> Result<(u64, String, Image)> {
        self.flush()?;
        let file = self.file.get_ref();
        let mut len = [0u8; 4];
        file.read_exact_at(&mut len, offset)
            .map_err(|e| io("reading", e))?;
        let mut record = vec![0u8; u32::from_le_bytes(len) as usize];
        file.read_exact_at(&mut record, offset + 4)
            .map_err(|e| io("reading", e))?;
        decode_record(&record).ok_or_else(|| {
            io(
                "reading",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a corrupt record at offset {offset}"),
                ),
            )
        })
    }
}

fn decode_record(record: &[u8]) -> Option<(u64, String, Image)> {
    let mut input = record;
    let prev = u64::from_le_bytes(take(&mut input, 8)?.try_into().ok()?);
    let key_len = u32::from_le_bytes(take(&mut input, 4)?.try_into().ok()?) as usize;
    let key = String::from_utf8(take(&mut input, key_len)?.to_vec()).ok()?;
    let image = match take(&mut input, 1)?[0] {
        0 => None,
        _ => {
            let n = u32::from_le_bytes(take(&mut input, 4)?.try_into().ok()?) as usize;
            let mut row = Vec::with_capacity(n);
            for _ in 0..n {
                row.push(decode(&mut input)?);
            }
            Some(row)
        }
    };
    Some((prev, key, image))
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

fn encode(value: &CdcValue, out: &mut Vec<u8>) {
    match value {
        CdcValue::Null => out.push(0),
        CdcValue::Boolean(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        CdcValue::Int(i) => {
            out.push(2);
            out.extend(i.to_le_bytes());
        }
        CdcValue::Float(f) => {
            out.push(3);
            out.extend(f.to_le_bytes());
        }
        CdcValue::Double(d) => {
            out.push(4);
            out.extend(d.to_le_bytes());
        }
        CdcValue::Decimal(unscaled, scale) => {
            out.push(5);
            out.extend(unscaled.to_le_bytes());
            out.extend(scale.to_le_bytes());
        }
        CdcValue::String(s) => {
            out.push(6);
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        }
        CdcValue::Bytes(b) => {
            out.push(7);
            out.extend((b.len() as u32).to_le_bytes());
            out.extend(b);
        }
        CdcValue::Date(d) => {
            out.push(8);
            out.extend(d.to_le_bytes());
        }
        CdcValue::Time(t) => {
            out.push(9);
            out.extend(t.to_le_bytes());
        }
        CdcValue::Timestamp(t) => {
            out.push(10);
            out.extend(t.to_le_bytes());
        }
        CdcValue::TimestampUtc(t) => {
            out.push(11);
            out.extend(t.to_le_bytes());
        }
        CdcValue::Array(values) => {
            out.push(12);
            out.extend((values.len() as u32).to_le_bytes());
            for v in values {
                encode(v, out);
            }
        }
        CdcValue::Unchanged => out.push(13),
    }
}

fn decode(input: &mut &[u8]) -> Option<CdcValue> {
    fn array<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
        take(input, N)?.try_into().ok()
    }
    Some(match take(input, 1)?[0] {
        0 => CdcValue::Null,
        1 => CdcValue::Boolean(take(input, 1)?[0] != 0),
        2 => CdcValue::Int(i64::from_le_bytes(array(input)?)),
        3 => CdcValue::Float(f32::from_le_bytes(array(input)?)),
        4 => CdcValue::Double(f64::from_le_bytes(array(input)?)),
        5 => CdcValue::Decimal(
            i128::from_le_bytes(array(input)?),
            u32::from_le_bytes(array(input)?),
        ),
        6 => {
            let n = u32::from_le_bytes(array(input)?) as usize;
            CdcValue::String(String::from_utf8(take(input, n)?.to_vec()).ok()?)
        }
        7 => {
            let n = u32::from_le_bytes(array(input)?) as usize;
            CdcValue::Bytes(take(input, n)?.to_vec())
        }
        8 => CdcValue::Date(i32::from_le_bytes(array(input)?)),
        9 => CdcValue::Time(i64::from_le_bytes(array(input)?)),
        10 => CdcValue::Timestamp(i64::from_le_bytes(array(input)?)),
        11 => CdcValue::TimestampUtc(i64::from_le_bytes(array(input)?)),
        12 => {
            let n = u32::from_le_bytes(array(input)?) as usize;
            let mut values = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                values.push(decode(input)?);
            }
            CdcValue::Array(values)
        }
        13 => CdcValue::Unchanged,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> Vec<CdcValue> {
        vec![
            CdcValue::Int(i),
            CdcValue::String(format!("s{i}")),
            CdcValue::Null,
            CdcValue::Decimal(-12345, 2),
            CdcValue::Array(vec![CdcValue::Double(0.5), CdcValue::Bytes(vec![0, 255])]),
            CdcValue::Boolean(true),
            CdcValue::Date(-3),
            CdcValue::TimestampUtc(1_700_000_000_000_000),
            CdcValue::Float(1.5),
            CdcValue::Time(7),
            CdcValue::Timestamp(-1),
            CdcValue::Unchanged,
        ]
    }

    #[test]
    fn images_past_the_limit_spill_and_read_back() {
        let mut store = ImageStore::new(10, None, true);
        for i in 0..1_000 {
            store.insert(format!("k{i}"), Some(row(i))).unwrap();
        }
        assert_eq!(store.spilled(), 990);
        // Written again: the newest image wins, in memory and in the file.
        store.insert("k3".into(), None).unwrap();
        store.insert("k500".into(), Some(row(-500))).unwrap();
        store.insert("k501".into(), None).unwrap();
        assert_eq!(store.spilled(), 990);
        assert_eq!(store.get("k3").unwrap(), Some(None));
        assert_eq!(store.get("k4").unwrap(), Some(Some(row(4))));
        assert_eq!(store.get("k500").unwrap(), Some(Some(row(-500))));
        assert_eq!(store.get("k501").unwrap(), Some(None));
        assert_eq!(store.get("k999").unwrap(), Some(Some(row(999))));
        assert_eq!(store.get("k1000").unwrap(), None);
        assert!(store.contains("k777").unwrap());
        assert!(!store.contains("nope").unwrap());
        store
            .remap(|r| r.iter().take(2).cloned().collect())
            .unwrap();
        assert_eq!(
            store.get("k600").unwrap(),
            Some(Some(row(600).into_iter().take(2).collect()))
        );
        assert_eq!(store.get("k2").unwrap(), Some(Some(row(2)[..2].to_vec())));
        assert_eq!(store.get("k501").unwrap(), Some(None));
        store.clear();
        assert_eq!(store.get("k600").unwrap(), None);
        assert_eq!(store.spilled(), 0);
    }

    #[test]
    fn colliding_hashes_chain() {
        let mut spill = Spill {
            file: BufWriter::new(tempfile::tempfile().unwrap()),
            len: 0,
            unflushed: false,
            index: HashMap::new(),
            keys: 0,
        };
        spill.append("a", &Some(row(1))).unwrap();
        // Pretend "b" hashes like "a": its record chains to a's.
        let head = spill.index[&hash("a")];
        spill.index.insert(hash("b"), head);
        spill.append("b", &Some(row(2))).unwrap();
        let b_head = spill.index[&hash("b")];
        spill.index.insert(hash("a"), b_head);
        assert_eq!(spill.get("a").unwrap(), Some(Some(row(1))));
        assert_eq!(spill.get("b").unwrap(), Some(Some(row(2))));
        assert_eq!(spill.get("c").unwrap(), None);
    }
}
