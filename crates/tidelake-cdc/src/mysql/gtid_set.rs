//! MySQL GTID sets: per source (a server UUID, and since MySQL 8.4 an
//! optional tag), the transaction numbers executed, as intervals.
//!
//! Text as MySQL prints `@@gtid_executed`:
//! `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9:tag:1-3,<uuid2>:1-3`
//! (intervals inclusive; a tag applies to the intervals after it). Parsing
//! accepts MySQL's own spelling (upper-case UUIDs, newlines after commas,
//! unmerged or unordered intervals); printing is canonical: sources in
//! UUID then tag order, intervals merged and ascending.

use std::collections::BTreeMap;
use std::fmt;

/// One transaction's GTID: `uuid[:tag]:number`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlGtid {
    /// Lower-case hyphenated server UUID.
    pub uuid: String,
    /// The tag, empty for an untagged GTID.
    pub tag: String,
    pub number: u64,
}

impl MysqlGtid {
    /// From a GTID event's 16-byte SID.
    pub fn from_sid(sid: [u8; 16], tag: Option<&str>, number: u64) -> MysqlGtid {
        let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        MysqlGtid {
            uuid,
            tag: tag.unwrap_or_default().to_string(),
            number,
        }
    }
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            write!(f, "{}:{}", self.uuid, self.number)
        } else {
            write!(f, "{}:{}:{}", self.uuid, self.tag, self.number)
        }
    }
}

/// Inclusive `(first, last)` intervals, ascending, disjoint and not
/// adjacent (`1-3:4-5` is kept as `1-5`), so equal sets compare equal.
type Intervals = Vec<(u64, u64)>;

/// A set of MySQL GTIDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidSet {
    /// Keyed by (UUID, tag); the untagged source has the empty tag. No
    /// entry has an empty interval list.
    sources: BTreeMap<(String, String), Intervals>,
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// MySQL's tag syntax: `[a-z_][a-z0-9_]{0,31}` (it lower-cases them).
fn is_tag(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && text.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Sorts and merges overlapping or adjacent intervals.
fn normalize(intervals: &mut Intervals) {
    intervals.sort_unstable();
    let mut merged: Intervals = Vec::with_capacity(intervals.len());
    for &(first, last) in intervals.iter() {
        match merged.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    *intervals = merged;
}

impl GtidSet {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn parse(text: &str) -> Result<GtidSet, String> {
        let mut set = GtidSet::default();
        for element in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("bad GTID set element {element:?} in {text:?}: {why}");
            let mut parts = element.split(':').map(str::trim);
            let uuid = parts.next().unwrap_or_default().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(bad("expected a server UUID first"));
            }
            let mut tag = String::new();
            let mut any = false;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    let (first, last) = part.split_once('-').unwrap_or((part, part));
                    let first: u64 = first.parse().map_err(|_| bad("bad interval"))?;
                    let last: u64 = last.parse().map_err(|_| bad("bad interval"))?;
                    if first == 0 || last < first {
                        return Err(bad("intervals are 1-based and ascending"));
                    }
                    set.add_interval(&uuid, &tag, first, last);
                    any = true;
                } else {
                    let lower = part.to_ascii_lowercase();
                    if !is_tag(&lower) {
                        return Err(bad("expected an interval or a tag"));
                    }
                    tag = lower;
                }
            }
            if !any {
                return Err(bad("no interval"));
            }
        }
        Ok(set)
    }

    /// Adds `first..=last` of the source `uuid` (lower case) with `tag`.
    pub fn add_interval(&mut self, uuid: &str, tag: &str, first: u64, last: u64) {
        let intervals = self
            .sources
            .entry((uuid.to_string(), tag.to_string()))
            .or_default();
        // The common case, a source's next transaction, without a re-sort.
        if let Some(prev) = intervals.last_mut() {
            if first == prev.1.saturating_add(1) && first > prev.0 {
                prev.1 = prev.1.max(last);
                return;
            }
        }
        intervals.push((first, last));
        normalize(intervals);
    }

    pub fn add(&mut self, gtid: &MysqlGtid) {
        self.add_interval(&gtid.uuid, &gtid.tag, gtid.number, gtid.number);
    }

    pub fn contains(&self, gtid: &MysqlGtid) -> bool {
        let Some(intervals) = self.sources.get(&(gtid.uuid.clone(), gtid.tag.clone())) else {
            return false;
        };
        // The first interval whose last number is at or after the GTID's.
        let i = intervals.partition_point(|&(_, last)| last < gtid.number);
        intervals
            .get(i)
            .is_some_and(|&(first, _)| first <= gtid.number)
    }

    /// Whether every GTID of `self` is in `other`.
    pub fn is_subset(&self, other: &GtidSet) -> bool {
        self.sources.iter().all(|(key, mine)| {
            let Some(theirs) = other.sources.get(key) else {
                return false;
            };
            mine.iter().all(|&(first, last)| {
                let i = theirs.partition_point(|&(_, end)| end < first);
                theirs.get(i).is_some_and(|&(f, l)| f <= first && last <= l)
            })
        })
    }

    /// The GTIDs in both sets.
    pub fn intersection(&self, other: &GtidSet) -> GtidSet {
        let mut sources = BTreeMap::new();
        for (key, mine) in &self.sources {
            let Some(theirs) = other.sources.get(key) else {
                continue;
            };
            let (mut i, mut j) = (0, 0);
            let mut both = Vec::new();
            while i < mine.len() && j < theirs.len() {
                let first = mine[i].0.max(theirs[j].0);
                let last = mine[i].1.min(theirs[j].1);
                if first <= last {
                    both.push((first, last));
                }
                if mine[i].1 < theirs[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            if !both.is_empty() {
                sources.insert(key.clone(), both);
            }
        }
        GtidSet { sources }
    }

    /// Per (UUID, tag), the intervals as `first..=last`: what a
    /// `COM_BINLOG_DUMP_GTID` request carries.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[(u64, u64)])> {
        self.sources
            .iter()
            .map(|((uuid, tag), intervals)| (uuid.as_str(), tag.as_str(), intervals.as_slice()))
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current_uuid: Option<&str> = None;
        for ((uuid, tag), intervals) in &self.sources {
            if current_uuid == Some(uuid.as_str()) {
                // Another tag of the same server: one element, as MySQL prints.
            } else {
                if current_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(uuid)?;
                current_uuid = Some(uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(first, last) in intervals {
                if first == last {
                    write!(f, ":{first}")?;
                } else {
                    write!(f, ":{first}-{last}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4c4f0a10-0000-11ef-8000-0242ac120002";

    fn gtid(uuid: &str, tag: &str, number: u64) -> MysqlGtid {
        MysqlGtid {
            uuid: uuid.into(),
            tag: tag.into(),
            number,
        }
    }

    #[test]
    fn parses_mysql_spellings_and_prints_canonically() {
        let text = format!(
            "{}:7-9:1-5,\n{B}:1-3, {A}:tag_1:2:3 ",
            A.to_ascii_uppercase()
        );
        let set = GtidSet::parse(&text).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-5:7-9:tag_1:2-3,{B}:1-3"));
        assert_eq!(GtidSet::parse(&set.to_string()).unwrap(), set);
        assert!(set.contains(&gtid(A, "", 5)));
        assert!(!set.contains(&gtid(A, "", 6)));
        assert!(set.contains(&gtid(A, "tag_1", 3)));
        assert!(!set.contains(&gtid(A, "tag_1", 1)));
        assert!(!set.contains(&gtid(B, "tag_1", 1)));
        assert_eq!(GtidSet::parse("").unwrap(), GtidSet::default());
        // MySQL compares tags without case and prints them lower-case.
        assert_eq!(
            GtidSet::parse(&format!("{A}:Tag_1:2-3"))
                .unwrap()
                .to_string(),
            format!("{A}:tag_1:2-3")
        );
        for bad in [
            "0-1-42",
            "3e11fa47:1-5",
            A,
            &format!("{A}:0-3"),
            &format!("{A}:5-3"),
            &format!("{A}:t-g:1"),
            &format!("{A}:1-x"),
        ] {
            assert!(GtidSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sid_bytes_print_as_a_hyphenated_uuid() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(
            MysqlGtid::from_sid(sid, None, 9).to_string(),
            format!("{A}:9")
        );
        assert_eq!(
            MysqlGtid::from_sid(sid, Some("t"), 9).to_string(),
            format!("{A}:t:9")
        );
    }

    /// Numbers of two sources (one untagged, one tagged), as a model.
    fn model_set() -> impl Strategy<Value = Vec<(bool, u64)>> {
        proptest::collection::vec((any::<bool>(), 1u64..40), 0..30)
    }

    fn build(numbers: &[(bool, u64)]) -> (GtidSet, BTreeSet<(bool, u64)>) {
        let mut set = GtidSet::default();
        for &(tagged, n) in numbers {
            set.add(&gtid(A, if tagged { "t" } else { "" }, n));
        }
        (set, numbers.iter().copied().collect())
    }

    fn members(set: &GtidSet) -> BTreeSet<(bool, u64)> {
        (1u64..40)
            .flat_map(|n| [(false, n), (true, n)])
            .filter(|&(tagged, n)| set.contains(&gtid(A, if tagged { "t" } else { "" }, n)))
            .collect()
    }

    proptest! {
        #[test]
        fn interval_logic_matches_a_set_of_numbers(a in model_set(), b in model_set()) {
            let (set_a, model_a) = build(&a);
            let (set_b, model_b) = build(&b);
            prop_assert_eq!(members(&set_a), model_a.clone());
            // Canonical: merged intervals, so the text round-trips and
            // equal sets built in any order are equal.
            for intervals in set_a.sources.values() {
                for pair in intervals.windows(2) {
                    prop_assert!(pair[0].1 + 1 < pair[1].0);
                }
            }
            prop_assert_eq!(&GtidSet::parse(&set_a.to_string()).unwrap(), &set_a);
            let mut reversed = a.clone();
            reversed.reverse();
            prop_assert_eq!(&build(&reversed).0, &set_a);
            prop_assert_eq!(set_a.is_subset(&set_b), model_a.is_subset(&model_b));
            let both = set_a.intersection(&set_b);
            let model_both: BTreeSet<_> = model_a.intersection(&model_b).copied().collect();
            prop_assert_eq!(members(&both), model_both.clone());
            prop_assert_eq!(both.is_empty(), model_both.is_empty());
        }
    }
}
