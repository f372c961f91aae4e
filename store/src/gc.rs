//! `compose store gc`: removes leftover temp files, action entries unused for longer than the
//! chosen age, and every object that no remaining action entry reaches (directly, or through a
//! tree's contents). Runs under the exclusive store lock, so no build is in flight.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime};

use crate::action::ActionRecord;
use crate::{Hash, RefKind, Store, StoreError, Tree};

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Action entries not used for this long are dropped. `Duration::ZERO` drops them all.
    pub max_age: Duration,
    pub dry_run: bool,
}

#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct GcReport {
    pub temp_files: u64,
    pub actions_removed: u64,
    pub objects_removed: u64,
    pub aliases_removed: u64,
    pub bytes_freed: u64,
    /// The roots whose inputs were kept, and why.
    pub roots_kept: Vec<KeptRoot>,
    pub roots_removed: u64,
    /// Working directories that killed compose processes left in the temp directory (set by the
    /// caller, which knows where that is).
    pub dead_temp_dirs: u64,
}

/// A lock whose inputs gc kept.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct KeptRoot {
    pub name: String,
    pub inputs: usize,
    pub pinned: bool,
    /// Seconds since a build last used it.
    pub age_seconds: Option<u64>,
}

pub(crate) fn run(store: &Store, options: &GcOptions) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    let remove = |path: &std::path::Path| if options.dry_run { Ok(()) } else { fs::remove_file(path) };
    report.temp_files = remove_temps(store, options.dry_run, true)?;

    // Checkouts are derived from trees and cheap to make again; no build holds one now.
    let checkouts = store.dir("checkouts");
    if checkouts.is_dir() && !options.dry_run {
        let _ = make_writable(&checkouts);
        let _ = fs::remove_dir_all(&checkouts);
    }

    let now = SystemTime::now();
    let mut live: HashSet<Hash> = HashSet::new();
    for (_, path) in crate::action::walk(store)? {
        let age = fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
        let expired = options.max_age.is_zero() || age.is_some_and(|a| a > options.max_age);
        let record: Option<ActionRecord> = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match record {
            Some(record) if !expired => {
                for output in record.outputs {
                    live.insert(output.id);
                    if output.kind == RefKind::Tree
                        && let Ok(tree) = store.read(&output.id).map(|b| Tree::from_bytes(&b))
                        && let Ok(tree) = tree
                    {
                        live.extend(tree.contents().copied());
                    }
                }
            }
            _ => {
                let _ = remove(&path);
                report.actions_removed += 1;
            }
        }
    }

    // The inputs of every lock used within the age limit, or pinned.
    for (path, found) in store.roots()? {
        let Some(found) = found else {
            let _ = remove(&path);
            report.roots_removed += 1;
            continue;
        };
        let age = found.last_used.and_then(|t| now.duration_since(t).ok());
        let expired = !found.root.pinned && (options.max_age.is_zero() || age.is_some_and(|a| a > options.max_age));
        if expired {
            let _ = remove(&path);
            report.roots_removed += 1;
            continue;
        }
        for sha in &found.root.inputs {
            if let Ok(Some(blob)) = store.lookup_sha256(sha) {
                live.insert(blob.id);
            }
        }
        report.roots_kept.push(KeptRoot {
            name: found.root.name.clone(),
            inputs: found.root.inputs.len(),
            pinned: found.root.pinned,
            age_seconds: age.map(|a| a.as_secs()),
        });
    }

    for (name, path) in crate::object::walk_objects(store)? {
        let keep = name.parse::<Hash>().map(|h| live.contains(&h)).unwrap_or(false);
        if !keep {
            report.bytes_freed += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let _ = remove(&path);
            report.objects_removed += 1;
        }
    }
    for (_, path) in crate::object::walk_aliases(store)? {
        let target = fs::read_to_string(&path).ok().and_then(|t| crate::object::parse_alias(&t));
        if !target.is_some_and(|(id, _)| live.contains(&id)) {
            let _ = remove(&path);
            report.aliases_removed += 1;
        }
    }
    Ok(report)
}

/// Removes what killed builds left: the `tmp` bucket's entries and, when `shards` is set, the
/// in-flight writes in every bucket's shard directories. Only under the exclusive lock.
fn remove_temps(store: &Store, dry_run: bool, shards: bool) -> Result<u64, StoreError> {
    let mut count = 0;
    let remove = |path: &std::path::Path| if dry_run { Ok(()) } else { fs::remove_file(path) };
    let tmp = store.dir("tmp");
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            // A checkout a killed build left half made is a directory.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if !dry_run {
                    let _ = make_writable(&entry.path());
                    let _ = fs::remove_dir_all(entry.path());
                }
            } else {
                let _ = remove(&entry.path());
            }
            count += 1;
        }
    }
    if shards {
        for temp in crate::object::walk_temps(store)? {
            let _ = remove(&temp);
            count += 1;
        }
    }
    Ok(count)
}

/// How often a build that finds the store idle also walks every shard for leftover writes (the
/// `tmp` bucket itself is cleaned every such time: it is one directory).
const SHARD_CLEAN_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Run by a build that got the store lock exclusively for a moment: no other process is in it,
/// so every temp file is a killed build's. Best effort; a read-only store is left as it is.
pub(crate) fn clean_temps(store: &Store) {
    let marker = store.dir("locks").join("temps-cleaned");
    let due = fs::metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age > SHARD_CLEAN_INTERVAL);
    let _ = remove_temps(store, false, due);
    if due {
        // Touched, never followed: a link planted here is not written through.
        let _ = fs::remove_file(&marker);
        let _ = crate::object::create_new_file(&marker);
    }
}

/// Checkouts keep their directories' modes (some read-only); removal needs them writable.
fn make_writable(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o755))?;
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}
