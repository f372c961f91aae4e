//! How step results are written to the action cache and read back: the records every step
//! module writes, kept below them all.

use composer_store::{ActionRecord, BlobInfo, ObjectRef, RefKind};

use crate::BuildError;

/// The field of a shared sdist build's record that names the wheel it made.
pub(crate) const BUILT_WHEEL: &str = "built_wheel";

/// What the fetch of a package file that the store cannot find by its SHA-256 records.
pub(crate) fn package_file_record(blob: &BlobInfo) -> ActionRecord {
    ActionRecord {
        step: "package-file".into(),
        outputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
        inputs: Vec::new(),
        data: serde_json::json!({ "sha256": blob.sha256.to_hex(), "size": blob.size }),
    }
}

pub(crate) fn layer_record(step: &str, layer: &composer_oci::LayerBlob) -> ActionRecord {
    ActionRecord {
        inputs: Vec::new(),
        step: step.into(),
        outputs: vec![ObjectRef { id: layer.blob.id, kind: RefKind::Blob }],
        data: serde_json::to_value(layer).expect("serializes"),
    }
}

/// A record that says a step had nothing to add to the image.
pub(crate) fn empty_record(step: &str) -> ActionRecord {
    ActionRecord { inputs: Vec::new(), step: step.into(), outputs: vec![], data: serde_json::Value::Null }
}

pub(crate) fn layer_from(record: &ActionRecord) -> Result<composer_oci::LayerBlob, BuildError> {
    serde_json::from_value(record.data.clone()).map_err(|e| corrupt_record(record, e))
}

pub(crate) fn corrupt_record(record: &ActionRecord, error: serde_json::Error) -> BuildError {
    BuildError::Store(composer_store::StoreError::Corrupt {
        what: format!("{} record", record.step),
        reason: Box::new(composer_store::Corruption::Unparsable(error.into())),
    })
}
