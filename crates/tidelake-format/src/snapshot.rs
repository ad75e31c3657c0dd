//! Snapshots: the `snapshot/snapshot-{N}` JSON documents, one per commit.
//!
//! Keys are written in the order of Paimon's Java `Snapshot` and optional
//! ones are left out when absent, as Java does; unknown keys written by newer
//! Paimon versions (`uuid`, `writerVersion`, `operation`, ...) are ignored on
//! read.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{FormatError, Result};
use crate::schema::to_pretty_json;

/// Snapshot version written by current Paimon.
pub const CURRENT_SNAPSHOT_VERSION: i32 = 3;

/// Version assumed for snapshots written without one (Table Store 0.2).
const LEGACY_SNAPSHOT_VERSION: i32 = 1;

/// What a commit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommitKind {
    /// New data files were added.
    Append,
    /// Files were rewritten without changing the data.
    Compact,
    /// Partitions (or the whole table) were replaced.
    Overwrite,
    /// Only statistics changed.
    Analyze,
}

/// One snapshot of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    #[serde(default = "legacy_version", deserialize_with = "version_or_legacy")]
    pub version: i32,
    pub id: i64,
    pub schema_id: i64,
    /// Manifest list of every live file of the previous snapshot.
    pub base_manifest_list: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_manifest_list_size: Option<i64>,
    /// Manifest list of the files this commit added and removed.
    pub delta_manifest_list: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_manifest_list_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog_manifest_list: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog_manifest_list_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_manifest: Option<String>,
    pub commit_user: String,
    pub commit_identifier: i64,
    pub commit_kind: CommitKind,
    pub time_millis: i64,
    /// Log system offsets per bucket; dropped from Paimon 1.4 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_offsets: Option<BTreeMap<i32, i64>>,
    /// Always written (as `null` when unknown), as Java does: pypaimon
    /// requires the key to be present.
    pub total_record_count: Option<i64>,
    pub delta_record_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog_record_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_row_id: Option<i64>,
}

fn legacy_version() -> i32 {
    LEGACY_SNAPSHOT_VERSION
}

/// Java declares the version nullable; `null` means a legacy snapshot.
fn version_or_legacy<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<i32, D::Error> {
    Ok(Option::<i32>::deserialize(deserializer)?.unwrap_or(LEGACY_SNAPSHOT_VERSION))
}

impl Snapshot {
    /// Reads a snapshot file.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "snapshot",
            source,
        })
    }

    /// The snapshot file, as Paimon's Java writer lays it out.
    pub fn to_json(&self) -> Result<String> {
        to_pretty_json(self).map_err(|source| FormatError::Json {
            what: "snapshot",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYPAIMON_SNAPSHOT: &[u8] = include_bytes!("../tests/data/pypaimon-snapshot-1.json");

    fn example() -> Snapshot {
        Snapshot {
            version: 3,
            id: 2,
            schema_id: 0,
            base_manifest_list: "manifest-list-a-0".into(),
            base_manifest_list_size: Some(884),
            delta_manifest_list: "manifest-list-a-1".into(),
            delta_manifest_list_size: Some(989),
            changelog_manifest_list: None,
            changelog_manifest_list_size: None,
            index_manifest: None,
            commit_user: "user".into(),
            commit_identifier: i64::MAX,
            commit_kind: CommitKind::Append,
            time_millis: 1_727_338_236_066,
            log_offsets: None,
            total_record_count: Some(3),
            delta_record_count: Some(3),
            changelog_record_count: None,
            watermark: None,
            statistics: None,
            properties: None,
            next_row_id: None,
        }
    }

    fn full() -> Snapshot {
        Snapshot {
            changelog_manifest_list: Some("manifest-list-a-2".into()),
            changelog_manifest_list_size: Some(10),
            index_manifest: Some("index-manifest-b-0".into()),
            commit_kind: CommitKind::Compact,
            log_offsets: Some(BTreeMap::from([(0, 5), (1, 7)])),
            changelog_record_count: Some(0),
            watermark: Some(-9_223_372_036_854_775_808),
            statistics: Some("stat-c-0".into()),
            properties: Some(BTreeMap::from([("k".into(), "v".into())])),
            next_row_id: Some(12),
            ..example()
        }
    }

    #[test]
    fn writes_java_layout_omitting_absent_fields() {
        let expected = r#"{
  "version" : 3,
  "id" : 2,
  "schemaId" : 0,
  "baseManifestList" : "manifest-list-a-0",
  "baseManifestListSize" : 884,
  "deltaManifestList" : "manifest-list-a-1",
  "deltaManifestListSize" : 989,
  "commitUser" : "user",
  "commitIdentifier" : 9223372036854775807,
  "commitKind" : "APPEND",
  "timeMillis" : 1727338236066,
  "totalRecordCount" : 3,
  "deltaRecordCount" : 3
}"#;
        assert_eq!(example().to_json().unwrap(), expected);
    }

    #[test]
    fn writes_every_field_in_java_order() {
        let json = full().to_json().unwrap();
        let keys: Vec<&str> = json
            .lines()
            .filter(|line| line.starts_with("  \""))
            .filter_map(|line| line.trim().split('"').nth(1))
            .collect();
        assert_eq!(
            keys,
            vec![
                "version",
                "id",
                "schemaId",
                "baseManifestList",
                "baseManifestListSize",
                "deltaManifestList",
                "deltaManifestListSize",
                "changelogManifestList",
                "changelogManifestListSize",
                "indexManifest",
                "commitUser",
                "commitIdentifier",
                "commitKind",
                "timeMillis",
                "logOffsets",
                "totalRecordCount",
                "deltaRecordCount",
                "changelogRecordCount",
                "watermark",
                "statistics",
                "properties",
                "nextRowId",
            ]
        );
        assert!(
            json.contains("\"logOffsets\" : {\n    \"0\" : 5,\n    \"1\" : 7\n  },"),
            "{json}"
        );
        assert!(json.contains("\"commitKind\" : \"COMPACT\""), "{json}");
    }

    #[test]
    fn round_trips() {
        for snapshot in [example(), full()] {
            assert_eq!(
                Snapshot::from_json(snapshot.to_json().unwrap().as_bytes()).unwrap(),
                snapshot
            );
        }
        for kind in [
            CommitKind::Append,
            CommitKind::Compact,
            CommitKind::Overwrite,
            CommitKind::Analyze,
        ] {
            let snapshot = Snapshot {
                commit_kind: kind,
                ..example()
            };
            assert_eq!(
                Snapshot::from_json(snapshot.to_json().unwrap().as_bytes())
                    .unwrap()
                    .commit_kind,
                kind
            );
        }
        let unknown_counts = Snapshot {
            total_record_count: None,
            delta_record_count: None,
            ..example()
        };
        let json = unknown_counts.to_json().unwrap();
        assert!(
            json.contains("\"totalRecordCount\" : null,\n  \"deltaRecordCount\" : null"),
            "{json}"
        );
        assert_eq!(
            Snapshot::from_json(json.as_bytes()).unwrap(),
            unknown_counts
        );
    }

    #[test]
    fn reads_pypaimon_snapshot_file() {
        let snapshot = Snapshot::from_json(PYPAIMON_SNAPSHOT).unwrap();
        let expected = Snapshot {
            version: 3,
            id: 1,
            schema_id: 0,
            base_manifest_list: "manifest-list-f9e7299e-575c-4bca-8566-7170f50a7dfa-0".into(),
            base_manifest_list_size: Some(1234),
            delta_manifest_list: "manifest-list-f9e7299e-575c-4bca-8566-7170f50a7dfa-1".into(),
            delta_manifest_list_size: Some(1357),
            commit_user: "936aaaeb-9fb3-4b9a-bdb7-5fce9f2ceb43".into(),
            commit_identifier: i64::MAX,
            commit_kind: CommitKind::Append,
            time_millis: 1_795_570_054_283,
            total_record_count: Some(1),
            delta_record_count: Some(1),
            ..example()
        };
        assert_eq!(snapshot, expected);
    }

    #[test]
    fn reads_older_java_snapshots() {
        // Paimon 0.9-style: nulls written out, empty log offsets, no version
        // in the oldest files.
        let json = br#"{
  "id" : 7,
  "schemaId" : 1,
  "baseManifestList" : "b",
  "deltaManifestList" : "d",
  "changelogManifestList" : null,
  "commitUser" : "u",
  "commitIdentifier" : 4,
  "commitKind" : "OVERWRITE",
  "timeMillis" : 1,
  "logOffsets" : { },
  "totalRecordCount" : null,
  "deltaRecordCount" : 2,
  "changelogRecordCount" : 0,
  "watermark" : null
}"#;
        let snapshot = Snapshot::from_json(json).unwrap();
        assert_eq!(snapshot.version, 1);
        assert_eq!(snapshot.commit_kind, CommitKind::Overwrite);
        assert_eq!(snapshot.changelog_manifest_list, None);
        assert_eq!(snapshot.log_offsets, Some(BTreeMap::new()));
        assert_eq!(snapshot.total_record_count, None);
        assert_eq!(snapshot.delta_record_count, Some(2));
        assert_eq!(snapshot.changelog_record_count, Some(0));
        let null_version = br#"{"version": null, "id": 1, "schemaId": 0, "baseManifestList": "b",
            "deltaManifestList": "d", "commitUser": "u", "commitIdentifier": 0, "commitKind": "APPEND",
            "timeMillis": 0}"#;
        assert_eq!(Snapshot::from_json(null_version).unwrap().version, 1);
    }

    #[test]
    fn bad_snapshots_are_reported() {
        let missing_user = br#"{"version": 3, "id": 1, "schemaId": 0, "baseManifestList": "b",
            "deltaManifestList": "d", "commitIdentifier": 0, "commitKind": "APPEND", "timeMillis": 0}"#;
        let error = Snapshot::from_json(missing_user).unwrap_err().to_string();
        assert!(
            error.contains("invalid snapshot JSON") && error.contains("commitUser"),
            "{error}"
        );
        let bad_kind = br#"{"version": 3, "id": 1, "schemaId": 0, "baseManifestList": "b", "deltaManifestList": "d",
            "commitUser": "u", "commitIdentifier": 0, "commitKind": "MERGE", "timeMillis": 0}"#;
        let error = Snapshot::from_json(bad_kind).unwrap_err().to_string();
        assert!(error.contains("MERGE"), "{error}");
    }
}
