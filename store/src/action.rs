//! The action cache: `actions-v1/<xx>/<key hex>` holds the JSON [`ActionRecord`] of a step whose
//! inputs hash to that key.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Hash, Store, StoreError};

/// The input hash of a step. Built from the step's kind, its format version and named fields, each
/// length-prefixed so that no two different inputs can collide by concatenation.
#[derive(Clone)]
pub struct ActionKey {
    hasher: blake3::Hasher,
    step: String,
}

impl ActionKey {
    pub fn new(step: &str, version: u32) -> ActionKey {
        let mut key = ActionKey { hasher: blake3::Hasher::new(), step: step.to_string() };
        key.field("store-format", crate::FORMAT.as_bytes());
        key.field("step", step.as_bytes());
        key.field("version", &version.to_le_bytes());
        key
    }

    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        for part in [name.as_bytes(), value] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        self
    }

    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.field(name, value.as_ref());
        self
    }

    pub fn hash(&self) -> Hash {
        Hash(*self.hasher.finalize().as_bytes())
    }

    pub fn step(&self) -> &str {
        &self.step
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// An opaque object.
    Blob,
    /// A tree manifest: its entries' contents are kept alive with it.
    Tree,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub id: Hash,
    pub kind: RefKind,
}

/// The result of a step: the objects it produced and step-specific data about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub step: String,
    pub outputs: Vec<ObjectRef>,
    /// The stored objects the step read (trees with their contents), so that a result made
    /// from an object later found damaged is found too (`verify`, quarantine). Not part of the
    /// key: the key already names the inputs by content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ObjectRef>,
    pub data: serde_json::Value,
}

impl ActionRecord {
    /// The record, naming the objects the step read.
    pub fn with_inputs(mut self, inputs: impl IntoIterator<Item = ObjectRef>) -> Self {
        self.inputs.extend(inputs);
        self
    }

    /// Whether this record names `id` as an output or holds it through a tree's contents. The
    /// tree is read without verification: this runs while a damaged object is being removed.
    pub(crate) fn refers_to(&self, store: &Store, id: &Hash) -> bool {
        self.outputs.iter().chain(&self.inputs).any(|o| {
            o.id == *id
                || (o.kind == RefKind::Tree
                    && fs::read(store.object_path(&o.id))
                        .ok()
                        .and_then(|b| crate::Tree::from_bytes(&b).ok())
                        .is_some_and(|t| t.contents().any(|c| c == id)))
        })
    }
}

fn path(store: &Store, key: &Hash) -> PathBuf {
    let hex = key.to_hex();
    store.dir("actions").join(&hex[..2]).join(hex)
}

pub(crate) fn get(store: &Store, key: &ActionKey) -> Result<Option<ActionRecord>, StoreError> {
    let path = path(store, &key.hash());
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", &path, e)),
    };
    let record: ActionRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        // A record we cannot read is a miss: the step runs again and rewrites it.
        Err(_) => return Ok(None),
    };
    if !record.outputs.iter().all(|o| store.contains(&o.id)) {
        return Ok(None);
    }
    // Touch for gc's age policy; failure to touch is harmless.
    let _ = fs::File::options().append(true).open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    Ok(Some(record))
}

pub(crate) fn put(store: &Store, key: &ActionKey, record: &ActionRecord) -> Result<(), StoreError> {
    put_hash(store, &key.hash(), record)
}

pub(crate) fn put_hash(store: &Store, key: &Hash, record: &ActionRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(record).expect("action records always serialize");
    crate::object::write_atomic(&path(store, key), &bytes)
}

pub(crate) fn walk(store: &Store) -> Result<Vec<(String, PathBuf)>, StoreError> {
    crate::object::walk_bucket_pub(&store.dir("actions"))
}

/// Every readable record of `step` whose outputs the store still holds.
pub(crate) fn records_of(store: &Store, step: &str) -> Result<Vec<ActionRecord>, StoreError> {
    let mut out = Vec::new();
    for (_, path) in walk(store)? {
        let Ok(bytes) = fs::read(&path) else { continue };
        let Ok(record) = serde_json::from_slice::<ActionRecord>(&bytes) else { continue };
        if record.step == step && record.outputs.iter().all(|o| store.contains(&o.id)) {
            out.push(record);
        }
    }
    Ok(out)
}
