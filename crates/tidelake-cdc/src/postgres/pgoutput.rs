//! The replication stream: the copy-both frames of a walsender (XLogData,
//! keepalives) and the pgoutput messages inside XLogData (protocol 1):
//! Begin, Commit, Relation, Insert, Update, Delete, Truncate; Origin, Type
//! and logical-decoding messages are read and ignored.

use bytes::{Buf, Bytes};

/// A frame of the replication stream.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// XLogData: WAL data starting at `start`.
    XLogData { start: u64, data: Bytes },
    /// Primary keepalive: the server's WAL end, and whether it wants a reply.
    Keepalive { wal_end: u64, reply: bool },
}

/// A column of a Relation message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RelationColumn {
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub modifier: i32,
}

/// One value of a tuple.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TupleValue {
    Null,
    /// An unchanged TOASTed value: not sent.
    Unchanged,
    Text(String),
}

#[derive(Debug, PartialEq)]
pub(crate) enum Message {
    Begin {
        /// The LSN of the commit record.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01.
        timestamp: i64,
    },
    Commit {
        end_lsn: u64,
    },
    Relation {
        id: u32,
        namespace: String,
        name: String,
        columns: Vec<RelationColumn>,
    },
    Insert {
        relation: u32,
        new: Vec<TupleValue>,
    },
    Update {
        relation: u32,
        /// The old key ('K') or old row ('O'), when sent.
        old: Option<(u8, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        relation: u32,
        old: (u8, Vec<TupleValue>),
    },
    Truncate {
        relations: Vec<u32>,
    },
    Other,
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

pub(crate) fn parse_frame(mut data: Bytes) -> Result<Frame, String> {
    if data.is_empty() {
        return Err("an empty replication frame".into());
    }
    let tag = data.get_u8();
    match tag {
        b'w' if data.len() >= 24 => {
            let start = data.get_u64();
            let _wal_end = data.get_u64();
            let _send_time = data.get_i64();
            Ok(Frame::XLogData { start, data })
        }
        b'k' if data.len() >= 17 => {
            let wal_end = data.get_u64();
            let _send_time = data.get_i64();
            let reply = data.get_u8() == 1;
            Ok(Frame::Keepalive { wal_end, reply })
        }
        tag => Err(format!("an unknown replication frame '{}'", tag as char)),
    }
}

/// A standby status update: everything up to `flushed` is durable.
pub(crate) fn status_update(written: u64, flushed: u64, now_micros: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(34);
    out.push(b'r');
    out.extend_from_slice(&written.to_be_bytes());
    out.extend_from_slice(&flushed.to_be_bytes());
    out.extend_from_slice(&flushed.to_be_bytes());
    out.extend_from_slice(&(now_micros - PG_EPOCH_MICROS).to_be_bytes());
    out.push(0);
    out
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), String> {
        if self.0.len() < n {
            Err("a truncated pgoutput message".into())
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8, String> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }
    fn u16(&mut self) -> Result<u16, String> {
        self.need(2)?;
        Ok(self.0.get_u16())
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.need(4)?;
        Ok(self.0.get_u32())
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.need(8)?;
        Ok(self.0.get_u64())
    }
    fn cstr(&mut self) -> Result<String, String> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or("an unterminated string in a pgoutput message")?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0.advance(end + 1);
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<TupleValue>, String> {
        let n = self.u16()?;
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::Unchanged,
                b't' | b'b' => {
                    let len = self.u32()? as usize;
                    self.need(len)?;
                    let bytes = self.0.split_to(len);
                    TupleValue::Text(String::from_utf8_lossy(&bytes).into_owned())
                }
                other => return Err(format!("an unknown tuple value kind '{}'", other as char)),
            });
        }
        Ok(values)
    }
}

pub(crate) fn parse_message(data: Bytes) -> Result<Message, String> {
    let mut r = Reader(data);
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => {
            let final_lsn = r.u64()?;
            let timestamp = r.u64()? as i64;
            let _xid = r.u32()?;
            Message::Begin {
                final_lsn,
                timestamp,
            }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            let _timestamp = r.u64()?;
            Message::Commit { end_lsn }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let _replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let modifier = r.i32()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                    modifier,
                });
            }
            Message::Relation {
                id,
                namespace,
                name,
                columns,
            }
        }
        b'I' => {
            let relation = r.u32()?;
            let _n = r.u8()?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, r.tuple()?));
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err("an update without its new tuple".into());
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            Message::Delete {
                relation,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let relations = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        _ => Message::Other,
    })
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub(crate) fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode() {
        let mut m = vec![b'U'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'N');
        m.extend_from_slice(&3u16.to_be_bytes());
        m.push(b't');
        m.extend_from_slice(&1u32.to_be_bytes());
        m.push(b'1');
        m.push(b'u');
        m.push(b'n');
        assert_eq!(
            parse_message(Bytes::from(m)).unwrap(),
            Message::Update {
                relation: 7,
                old: None,
                new: vec![
                    TupleValue::Text("1".into()),
                    TupleValue::Unchanged,
                    TupleValue::Null
                ],
            }
        );
        assert!(parse_message(Bytes::from_static(b"U\0\0")).is_err());
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(status_update(1, 2, PG_EPOCH_MICROS).len(), 34);
    }
}
