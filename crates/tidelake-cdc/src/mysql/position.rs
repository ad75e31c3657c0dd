//! Binlog positions: a binlog file and offset, and MariaDB's GTID state
//! (one `domain-server-sequence` per replication domain).
//!
//! Printed as `gtid=0-1-42,1-2-7;file=mysql-bin.000003;pos=1234`. A resume
//! uses the GTID state when there is one (it survives binlog rotation and
//! purged files: the server finds the transaction after it in whichever
//! file holds it), else the file and offset.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::event::SourcePosition;

/// A MariaDB GTID: replication domain, originating server, sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub sequence: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.sequence)
    }
}

impl Gtid {
    fn parse(text: &str) -> Option<Gtid> {
        let mut parts = text.trim().split('-');
        let gtid = Gtid {
            domain: parts.next()?.parse().ok()?,
            server: parts.next()?.parse().ok()?,
            sequence: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(gtid)
    }
}

/// Where the binlog stream stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinlogPosition {
    /// The last GTID seen per domain.
    pub gtids: BTreeMap<u32, Gtid>,
    pub file: String,
    pub offset: u64,
}

impl BinlogPosition {
    /// A GTID state as MariaDB prints it (`@@gtid_binlog_pos`,
    /// `BINLOG_GTID_POS()`): comma-separated, possibly empty.
    pub fn set_gtid_state(&mut self, state: &str) -> Result<(), String> {
        self.gtids.clear();
        for part in state.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid =
                Gtid::parse(part).ok_or_else(|| format!("bad GTID {part:?} in {state:?}"))?;
            self.gtids.insert(gtid.domain, gtid);
        }
        Ok(())
    }

    pub fn gtid_state(&self) -> String {
        let parts: Vec<String> = self.gtids.values().map(Gtid::to_string).collect();
        parts.join(",")
    }

    /// The order of two positions: by the GTID sequences of the domains
    /// both know (in domain order), else by binlog file and offset.
    pub fn compare(&self, other: &BinlogPosition) -> Ordering {
        for (domain, gtid) in &self.gtids {
            if let Some(theirs) = other.gtids.get(domain) {
                match gtid.sequence.cmp(&theirs.sequence) {
                    Ordering::Equal => {}
                    unequal => return unequal,
                }
            }
        }
        (&self.file, self.offset).cmp(&(&other.file, other.offset))
    }

    /// Whether a transaction with `gtid` that starts at `start` (file,
    /// offset) is at or before this position (already committed).
    pub fn covers(&self, gtid: Option<&Gtid>, start: Option<&(String, u64)>) -> bool {
        if let Some(gtid) = gtid {
            if let Some(mine) = self.gtids.get(&gtid.domain) {
                return gtid.sequence <= mine.sequence;
            }
        }
        match start {
            Some((file, offset)) => (file, *offset) < (&self.file, self.offset),
            None => false,
        }
    }

    pub fn to_source(&self) -> SourcePosition {
        SourcePosition(format!(
            "gtid={};file={};pos={}",
            self.gtid_state(),
            self.file,
            self.offset
        ))
    }

    pub fn parse(position: &SourcePosition) -> Result<BinlogPosition, String> {
        let mut parsed = BinlogPosition::default();
        for part in position.0.split(';') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!(
                    "bad binlog position {:?}: expected key=value parts",
                    position.0
                )
            })?;
            match key {
                "gtid" => parsed.set_gtid_state(value)?,
                "file" => parsed.file = value.to_string(),
                "pos" => {
                    parsed.offset = value
                        .parse()
                        .map_err(|_| format!("bad binlog offset {value:?} in {:?}", position.0))?
                }
                other => {
                    return Err(format!(
                        "unknown part {other:?} in binlog position {:?}",
                        position.0
                    ))
                }
            }
        }
        if parsed.gtids.is_empty() && parsed.file.is_empty() {
            return Err(format!(
                "binlog position {:?} names neither a GTID nor a file",
                position.0
            ));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let mut pos = BinlogPosition {
            file: "mysql-bin.000003".into(),
            offset: 1234,
            ..Default::default()
        };
        pos.set_gtid_state("0-1-42, 1-2-7").unwrap();
        let text = pos.to_source();
        assert_eq!(text.0, "gtid=0-1-42,1-2-7;file=mysql-bin.000003;pos=1234");
        assert_eq!(BinlogPosition::parse(&text).unwrap(), pos);
        assert!(BinlogPosition::parse(&SourcePosition("gtid=0-x-1;file=;pos=4".into())).is_err());
        assert!(BinlogPosition::parse(&SourcePosition("lsn=0/1".into())).is_err());
        let later = BinlogPosition::parse(&SourcePosition(
            "gtid=0-1-43,1-2-7;file=mysql-bin.000004;pos=4".into(),
        ))
        .unwrap();
        assert_eq!(pos.compare(&later), Ordering::Less);
        let gtid = Gtid {
            domain: 0,
            server: 1,
            sequence: 42,
        };
        assert!(pos.covers(Some(&gtid), None));
        assert!(!pos.covers(
            Some(&Gtid {
                sequence: 43,
                ..gtid
            }),
            None
        ));
        assert!(pos.covers(None, Some(&("mysql-bin.000003".into(), 1000))));
        assert!(!pos.covers(None, Some(&("mysql-bin.000003".into(), 1234))));
    }
}
