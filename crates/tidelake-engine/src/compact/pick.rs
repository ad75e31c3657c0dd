//! Which sorted runs of a bucket to compact: Paimon's universal compaction.
//!
//! A bucket's runs are ordered newest first: every level-0 file is a run of
//! its own (newest sequence numbers first), then every non-empty level ≥ 1.
//! Compaction always takes a prefix of that order (the newest runs), so the
//! output never jumps over an older run that holds other versions of a key.

/// The size of one sorted run and the level it lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunSize {
    pub level: usize,
    pub bytes: u64,
}

/// The newest `run_count` runs, rewritten into `output_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompactUnit {
    pub run_count: usize,
    pub output_level: usize,
}

/// The knobs of universal compaction (table options).
#[derive(Clone, Copy, Debug)]
pub(crate) struct UniversalPicker {
    pub max_size_amplification_percent: u64,
    pub size_ratio_percent: u64,
    pub compaction_trigger: usize,
    pub max_level: usize,
}

impl UniversalPicker {
    /// The runs to compact, if any: by size amplification, then by size
    /// ratio, then by the number of runs.
    pub fn pick(&self, runs: &[RunSize]) -> Option<CompactUnit> {
        if runs.len() < self.compaction_trigger || runs.is_empty() {
            return None;
        }
        if let Some(unit) = self.pick_for_size_amplification(runs) {
            return Some(unit);
        }
        if let Some(unit) = self.pick_for_size_ratio(runs, 1, false) {
            return Some(unit);
        }
        if runs.len() > self.compaction_trigger {
            // Enough of the newest runs to get back down to the trigger.
            let candidates = runs.len() - self.compaction_trigger + 1;
            return self.pick_for_size_ratio(runs, candidates, true);
        }
        None
    }

    /// Every run into the highest level; nothing when that is already so.
    pub fn pick_full(&self, runs: &[RunSize]) -> Option<CompactUnit> {
        match runs {
            [] => None,
            [only] if only.level == self.max_level => None,
            _ => Some(CompactUnit {
                run_count: runs.len(),
                output_level: self.max_level,
            }),
        }
    }

    /// When the newer runs together outgrow the oldest one by more than the
    /// allowed amplification, everything is rewritten.
    fn pick_for_size_amplification(&self, runs: &[RunSize]) -> Option<CompactUnit> {
        let (oldest, newer) = runs.split_last()?;
        let newer_bytes: u64 = newer.iter().map(|r| r.bytes).sum();
        if u128::from(newer_bytes) * 100
            > u128::from(self.max_size_amplification_percent) * u128::from(oldest.bytes)
        {
            return Some(self.unit(runs, runs.len()));
        }
        None
    }

    /// Grows the candidate prefix while the next (older) run is not much
    /// larger than the candidates together.
    fn pick_for_size_ratio(
        &self,
        runs: &[RunSize],
        first_candidates: usize,
        force: bool,
    ) -> Option<CompactUnit> {
        let mut count = first_candidates.min(runs.len());
        let mut candidate_bytes: u128 = runs[..count].iter().map(|r| u128::from(r.bytes)).sum();
        for next in &runs[count..] {
            // candidate * (100 + ratio) / 100 < next, in integers.
            if candidate_bytes * (100 + u128::from(self.size_ratio_percent))
                < u128::from(next.bytes) * 100
            {
                break;
            }
            candidate_bytes += u128::from(next.bytes);
            count += 1;
        }
        if force || count > 1 {
            Some(self.unit(runs, count))
        } else {
            None
        }
    }

    /// The output level of the newest `count` runs: just above the next run
    /// that stays, never level 0, the highest level when all runs are taken.
    pub fn unit(&self, runs: &[RunSize], mut count: usize) -> CompactUnit {
        let mut output_level = if count == runs.len() {
            self.max_level
        } else {
            runs[count].level.saturating_sub(1)
        };
        if output_level == 0 {
            // Level 0 holds one file per run: take runs until one at a
            // higher level, and write into that level.
            for next in &runs[count..] {
                count += 1;
                if next.level != 0 {
                    output_level = next.level;
                    break;
                }
            }
        }
        if count == runs.len() {
            output_level = self.max_level;
        }
        CompactUnit {
            run_count: count,
            output_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn picker() -> UniversalPicker {
        UniversalPicker {
            max_size_amplification_percent: 200,
            size_ratio_percent: 1,
            compaction_trigger: 5,
            max_level: 5,
        }
    }

    fn runs(spec: &[(usize, u64)]) -> Vec<RunSize> {
        spec.iter()
            .map(|&(level, bytes)| RunSize { level, bytes })
            .collect()
    }

    #[test]
    fn fewer_runs_than_the_trigger_are_left_alone() {
        assert_eq!(picker().pick(&runs(&[(0, 10), (0, 10), (5, 10)])), None);
    }

    #[test]
    fn size_amplification_takes_everything() {
        let r = runs(&[(0, 100), (0, 100), (0, 100), (0, 100), (5, 100)]);
        assert_eq!(
            picker().pick(&r),
            Some(CompactUnit {
                run_count: 5,
                output_level: 5
            })
        );
    }

    #[test]
    fn size_ratio_takes_similar_newest_runs() {
        // Newer runs are small against the oldest: no amplification; the two
        // newest runs are similar, the third is much larger.
        let r = runs(&[(0, 10), (0, 10), (3, 1000), (4, 2000), (5, 100_000)]);
        assert_eq!(
            picker().pick(&r),
            Some(CompactUnit {
                run_count: 2,
                output_level: 2
            })
        );
        let r = runs(&[(0, 10), (0, 10), (1, 1000), (4, 2000), (5, 100_000)]);
        assert_eq!(
            picker().pick(&r),
            Some(CompactUnit {
                run_count: 3,
                output_level: 1
            }),
            "level 0 output is avoided by taking the next run, at level 1"
        );
        let r = runs(&[(0, 10), (2, 10), (3, 1000), (4, 2000), (5, 100_000)]);
        assert_eq!(
            picker().pick(&r),
            Some(CompactUnit {
                run_count: 2,
                output_level: 2
            })
        );
    }

    #[test]
    fn file_count_forces_a_pick_when_ratios_do_not() {
        // Each run is far larger than all newer ones together.
        let r = runs(&[
            (0, 1),
            (1, 10),
            (2, 100),
            (3, 1000),
            (4, 10_000),
            (5, 1_000_000),
        ]);
        let unit = picker().pick(&r).unwrap();
        assert_eq!(
            unit,
            CompactUnit {
                run_count: 2,
                output_level: 1
            }
        );
    }

    #[test]
    fn full_compaction_skips_a_single_top_run() {
        assert_eq!(picker().pick_full(&runs(&[(5, 10)])), None);
        assert_eq!(
            picker().pick_full(&runs(&[(3, 10)])),
            Some(CompactUnit {
                run_count: 1,
                output_level: 5
            })
        );
        assert_eq!(picker().pick_full(&[]), None);
    }

    fn arb_runs() -> impl Strategy<Value = Vec<RunSize>> {
        (
            0usize..8,
            proptest::collection::btree_set(1usize..6, 0..5),
            proptest::collection::vec(1u64..10_000, 13),
        )
            .prop_map(|(level0, levels, sizes)| {
                let mut out: Vec<RunSize> = (0..level0)
                    .map(|_| RunSize { level: 0, bytes: 0 })
                    .collect();
                out.extend(levels.into_iter().map(|level| RunSize { level, bytes: 0 }));
                for (r, s) in out.iter_mut().zip(sizes) {
                    r.bytes = s;
                }
                out
            })
    }

    proptest! {
        #[test]
        fn picks_keep_the_lsm_ordered(r in arb_runs()) {
            let p = picker();
            if let Some(unit) = p.pick(&r) {
                prop_assert!(unit.run_count >= 1 && unit.run_count <= r.len());
                prop_assert!(unit.output_level >= 1 && unit.output_level <= p.max_level);
                // The output sits at or above every picked run's level and
                // strictly below every run left behind.
                let picked_max = r[..unit.run_count].iter().map(|x| x.level).max().unwrap();
                prop_assert!(unit.output_level >= picked_max);
                for left in &r[unit.run_count..] {
                    prop_assert!(left.level > unit.output_level);
                }
                // After the pick the bucket is no longer above the trigger
                // by more than one run.
                let remaining = r.len() - unit.run_count + 1;
                prop_assert!(remaining <= p.compaction_trigger.max(r.len() - 1));
            } else {
                prop_assert!(r.len() <= p.compaction_trigger);
            }
        }
    }
}
