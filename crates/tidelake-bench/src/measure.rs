//! Measurements as the JSON lines the suite collects, with the same fields
//! `bench/peers.py` prints, and the process's peak resident memory.

use serde_json::{json, Map, Value};

/// Peak resident memory of this process, from `VmHWM` in /proc/self/status.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM:   1234 kB` line of a /proc status file, in bytes.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let factor = match unit {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    Some(value * factor)
}

/// Nearest-rank percentile of an ascending slice, `q` in 0..=100 (as in
/// bench/common.py, so both sides report the same statistic).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64) / 100.0).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn round_to(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// One successful measurement.
pub struct Measurement {
    fields: Map<String, Value>,
}

impl Measurement {
    pub fn new(workload: &str, rows: u64, seconds: f64) -> Self {
        let mut fields = Map::new();
        fields.insert("workload".into(), json!(workload));
        fields.insert("system".into(), json!("tidelake"));
        fields.insert("status".into(), json!("ok"));
        fields.insert("rows".into(), json!(rows));
        fields.insert("seconds".into(), json!(round_to(seconds, 6)));
        let speed = if seconds > 0.0 {
            json!(round_to(rows as f64 / seconds, 1))
        } else {
            Value::Null
        };
        fields.insert("rows_per_s".into(), speed);
        fields.insert("peak_rss_bytes".into(), json!(peak_rss_bytes()));
        Measurement { fields }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.into(), value);
        self
    }

    pub fn with_all(mut self, extra: Map<String, Value>) -> Self {
        self.fields.extend(extra);
        self
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.fields.clone())
    }
}

pub fn failure(workload: &str, reason: &str) -> Value {
    json!({"workload": workload, "system": "tidelake", "status": "error", "reason": reason})
}

/// Compares the figures present on both sides: `check` is "ok", or
/// "mismatch" with `check_diff` naming what differed.
pub fn check_result(got: &Map<String, Value>, expected: &Map<String, Value>) -> Map<String, Value> {
    let mut diffs = Map::new();
    for (key, want) in expected {
        if let Some(have) = got.get(key) {
            if have != want {
                diffs.insert(key.clone(), json!({"expected": want, "got": have}));
            }
        }
    }
    let mut out = Map::new();
    if diffs.is_empty() {
        out.insert("check".into(), json!("ok"));
    } else {
        out.insert("check".into(), json!("mismatch"));
        out.insert("check_diff".into(), Value::Object(diffs));
    }
    out
}

/// Prints one JSON line on stdout.
pub fn emit(value: &Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status =
            "Name:\ttidelake-bench\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM: lots kB\n"), None);
    }

    #[test]
    fn this_process_has_a_peak_rss() {
        let rss = peak_rss_bytes().expect("Linux has /proc/self/status");
        assert!(
            rss > 1024 * 1024,
            "a running test binary uses more than 1 MiB, got {rss}"
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[3.0, 7.0], 50.0), 3.0);
        assert_eq!(percentile(&[3.0, 7.0], 51.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn measurements_carry_speed_and_extras() {
        let m = Measurement::new("ingest", 1000, 0.5)
            .with("table_bytes", json!(42))
            .to_json();
        assert_eq!(m["workload"], "ingest");
        assert_eq!(m["system"], "tidelake");
        assert_eq!(m["status"], "ok");
        assert_eq!(m["rows"], 1000);
        assert_eq!(m["rows_per_s"], 2000.0);
        assert_eq!(m["table_bytes"], 42);
        assert!(m["peak_rss_bytes"].as_u64().is_some());
        let instant = Measurement::new("scan_filter", 5, 0.0).to_json();
        assert!(instant["rows_per_s"].is_null());
    }

    #[test]
    fn checks_compare_only_shared_figures() {
        let got: Map<String, Value> =
            serde_json::from_value(json!({"rows": 10, "sum_amount_cents": 5})).unwrap();
        let same: Map<String, Value> =
            serde_json::from_value(json!({"rows": 10, "other": 1})).unwrap();
        assert_eq!(check_result(&got, &same)["check"], "ok");
        let differs: Map<String, Value> = serde_json::from_value(json!({"rows": 11})).unwrap();
        let out = check_result(&got, &differs);
        assert_eq!(out["check"], "mismatch");
        assert_eq!(out["check_diff"]["rows"]["expected"], 11);
        assert_eq!(out["check_diff"]["rows"]["got"], 10);
    }
}
