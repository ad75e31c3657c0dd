//! Binlog positions: a binlog file and offset, and the server's GTID
//! position: MariaDB's GTID state (one `domain-server-sequence` per
//! replication domain) or MySQL's GTID set (`uuid:1-5:7-9,uuid2:1-3`, the
//! transactions executed).
//!
//! Printed as `gtid=0-1-42,1-2-7;file=mysql-bin.000003;pos=1234` (MariaDB),
//! `gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57;file=binlog.000003;pos=1234`
//! (MySQL) or `gtid=;file=...;pos=...` (no GTIDs: MySQL with gtid_mode
//! OFF); the two GTID spellings cannot be confused, MySQL's always has a
//! colon and MariaDB's never. A resume uses the GTID position when there is
//! one (it survives binlog rotation and purged files: the server finds the
//! transactions after it in whichever file holds them), else the file and
//! offset.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

pub use super::gtid_set::{GtidSet, MysqlGtid};
use crate::event::SourcePosition;

/// The GTID of one transaction, in the server's flavour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransactionGtid {
    Mariadb(Gtid),
    Mysql(MysqlGtid),
}

impl fmt::Display for TransactionGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionGtid::Mariadb(g) => g.fmt(f),
            TransactionGtid::Mysql(g) => g.fmt(f),
        }
    }
}

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
    /// MariaDB: the last GTID seen per domain.
    pub gtids: BTreeMap<u32, Gtid>,
    /// MySQL (gtid_mode=ON): every transaction executed up to here.
    pub gtid_set: GtidSet,
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

    /// The MariaDB GTID state as `@slave_connect_state` takes it.
    pub fn gtid_state(&self) -> String {
        let parts: Vec<String> = self.gtids.values().map(Gtid::to_string).collect();
        parts.join(",")
    }

    /// The GTID part of the text: MySQL's set or MariaDB's state.
    fn gtid_text(&self) -> String {
        if self.gtid_set.is_empty() {
            self.gtid_state()
        } else {
            self.gtid_set.to_string()
        }
    }

    /// Records a transaction's GTID as executed.
    pub fn add_gtid(&mut self, gtid: &TransactionGtid) {
        match gtid {
            TransactionGtid::Mariadb(g) => {
                self.gtids.insert(g.domain, *g);
            }
            TransactionGtid::Mysql(g) => self.gtid_set.add(g),
        }
    }

    /// The order of two positions. MySQL GTID sets: a subset is before its
    /// superset (sets neither of which holds the other, or equal ones, go
    /// by file and offset). MariaDB: by the GTID sequences of the domains
    /// both know (in domain order). Else by binlog file and offset.
    pub fn compare(&self, other: &BinlogPosition) -> Ordering {
        if !self.gtid_set.is_empty()
            && !other.gtid_set.is_empty()
            && self.gtid_set != other.gtid_set
        {
            match (
                self.gtid_set.is_subset(&other.gtid_set),
                other.gtid_set.is_subset(&self.gtid_set),
            ) {
                (true, false) => return Ordering::Less,
                (false, true) => return Ordering::Greater,
                _ => {}
            }
        }
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
    pub fn covers(&self, gtid: Option<&TransactionGtid>, start: Option<&(String, u64)>) -> bool {
        match gtid {
            Some(TransactionGtid::Mariadb(gtid)) => {
                if let Some(mine) = self.gtids.get(&gtid.domain) {
                    return gtid.sequence <= mine.sequence;
                }
            }
            Some(TransactionGtid::Mysql(gtid)) if !self.gtid_set.is_empty() => {
                return self.gtid_set.contains(gtid);
            }
            _ => {}
        }
        match start {
            Some((file, offset)) => (file, *offset) < (&self.file, self.offset),
            None => false,
        }
    }

    pub fn to_source(&self) -> SourcePosition {
        SourcePosition(format!(
            "gtid={};file={};pos={}",
            self.gtid_text(),
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
                "gtid" if value.contains(':') => parsed.gtid_set = GtidSet::parse(value)?,
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
        if parsed.gtids.is_empty() && parsed.gtid_set.is_empty() && parsed.file.is_empty() {
            return Err(format!(
                "binlog position {:?} names neither a GTID nor a file",
                position.0
            ));
        }
        Ok(parsed)
    }

    /// Where a stream serving tables recorded at `positions` starts: the
    /// smallest of them; with MySQL GTID sets, the transactions every
    /// table has (their intersection), so that the server sends each
    /// transaction some table still lacks. When some table's position has
    /// no set (recorded by file and offset), the start has none either:
    /// the smallest file and offset serve every table.
    pub fn resume_start<'a>(
        positions: impl IntoIterator<Item = &'a BinlogPosition>,
    ) -> Option<BinlogPosition> {
        let positions: Vec<&BinlogPosition> = positions.into_iter().collect();
        let mut start = (*positions.iter().min_by(|a, b| a.compare(b))?).clone();
        if positions.iter().all(|p| !p.gtid_set.is_empty()) {
            for p in &positions {
                start.gtid_set = start.gtid_set.intersection(&p.gtid_set);
            }
        } else {
            start.gtid_set = GtidSet::default();
        }
        Some(start)
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
        assert!(pos.covers(Some(&TransactionGtid::Mariadb(gtid)), None));
        assert!(!pos.covers(
            Some(&TransactionGtid::Mariadb(Gtid {
                sequence: 43,
                ..gtid
            })),
            None
        ));
        assert!(pos.covers(None, Some(&("mysql-bin.000003".into(), 1000))));
        assert!(!pos.covers(None, Some(&("mysql-bin.000003".into(), 1234))));
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4c4f0a10-0000-11ef-8000-0242ac120002";

    fn at(text: &str) -> BinlogPosition {
        BinlogPosition::parse(&SourcePosition(text.into())).unwrap()
    }

    fn mysql_gtid(uuid: &str, number: u64) -> TransactionGtid {
        TransactionGtid::Mysql(MysqlGtid {
            uuid: uuid.into(),
            tag: String::new(),
            number,
        })
    }

    #[test]
    fn mysql_gtid_set_positions_round_trip_and_order() {
        let text = format!("gtid={A}:1-5:7-9,{B}:1-3;file=binlog.000003;pos=1234");
        let pos = at(&text);
        assert!(pos.gtids.is_empty());
        assert_eq!(pos.gtid_set.to_string(), format!("{A}:1-5:7-9,{B}:1-3"));
        assert_eq!(pos.to_source().0, text);
        // MySQL prints upper case and newlines; the text is canonical.
        let spelled = at(&format!(
            "gtid={}:7-9:1-5,\n{B}:1-3;file=binlog.000003;pos=1234",
            A.to_ascii_uppercase()
        ));
        assert_eq!(spelled, pos);
        // Positions recorded before GTID sets (MySQL by file and offset)
        // still parse, as themselves.
        let old = at("gtid=;file=binlog.000003;pos=1234");
        assert!(old.gtid_set.is_empty() && old.gtids.is_empty());
        assert_eq!(old.to_source().0, "gtid=;file=binlog.000003;pos=1234");
        assert!(
            BinlogPosition::parse(&SourcePosition(format!("gtid={A}:0-3;file=;pos=4"))).is_err()
        );

        // A subset is earlier, whatever the files say (a resume by GTID
        // may see other file names than the first run).
        let later = at(&format!("gtid={A}:1-9,{B}:1-3;file=binlog.000001;pos=4"));
        assert_eq!(pos.compare(&later), Ordering::Less);
        assert_eq!(later.compare(&pos), Ordering::Greater);
        assert_eq!(pos.compare(&pos.clone()), Ordering::Equal);
        let mut next = pos.clone();
        next.add_gtid(&mysql_gtid(A, 6));
        assert_eq!(next.gtid_set.to_string(), format!("{A}:1-9,{B}:1-3"));
        assert_eq!(pos.compare(&next), Ordering::Less);

        // Covered: what the set holds; the file and offset only without a set.
        assert!(pos.covers(Some(&mysql_gtid(A, 8)), None));
        assert!(!pos.covers(Some(&mysql_gtid(A, 6)), None));
        assert!(!pos.covers(Some(&mysql_gtid(B, 4)), Some(&("binlog.000001".into(), 4))));
        assert!(old.covers(
            Some(&mysql_gtid(A, 1)),
            Some(&("binlog.000003".into(), 100))
        ));
        assert!(!old.covers(Some(&mysql_gtid(A, 1)), Some(&("binlog.000004".into(), 4))));
    }

    #[test]
    fn a_resume_starts_from_the_transactions_every_table_has() {
        let t1 = at(&format!("gtid={A}:1-10,{B}:1-2;file=binlog.000002;pos=900"));
        let t2 = at(&format!("gtid={A}:1-7:9;file=binlog.000002;pos=700"));
        let start = BinlogPosition::resume_start([&t1, &t2]).unwrap();
        assert_eq!(start.gtid_set.to_string(), format!("{A}:1-7:9"));
        assert_eq!((start.file.as_str(), start.offset), ("binlog.000002", 700));
        let maria = at("gtid=0-1-5;file=mysql-bin.000001;pos=10");
        let maria_later = at("gtid=0-1-9;file=mysql-bin.000001;pos=90");
        let start = BinlogPosition::resume_start([&maria_later, &maria]).unwrap();
        assert_eq!(start, maria);
        assert!(BinlogPosition::resume_start([]).is_none());
        // One table recorded by file and offset: all start from there.
        let t3 = at("gtid=;file=binlog.000001;pos=500");
        let start = BinlogPosition::resume_start([&t1, &t3]).unwrap();
        assert_eq!(start, t3);
    }
}
