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

#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub temp_files: u64,
    pub actions_removed: u64,
    pub objects_removed: u64,
    pub aliases_removed: u64,
    pub bytes_freed: u64,
}

pub(crate) fn run(store: &Store, options: &GcOptions) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    let remove = |path: &std::path::Path| if options.dry_run { Ok(()) } else { fs::remove_file(path) };

    let tmp = store.dir("tmp");
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            // A checkout a killed build left half made is a directory.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if !options.dry_run {
                    let _ = make_writable(&entry.path());
                    let _ = fs::remove_dir_all(entry.path());
                }
            } else {
                let _ = remove(&entry.path());
            }
            report.temp_files += 1;
        }
    }

    for temp in crate::object::walk_temps(store)? {
        let _ = remove(&temp);
        report.temp_files += 1;
    }

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
