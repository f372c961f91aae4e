//! `compose store verify`: every object must hash to its name, every alias must point at an
//! object with that SHA-256, every action must refer only to objects that exist, and every tree to
//! contents that exist; a record whose inputs include a damaged object (directly or through a
//! tree) is reported with it. Objects are rehashed in parallel.

use std::fs;
use std::io;
use std::path::PathBuf;

use rayon::prelude::*;
use sha2::Digest;

use crate::action::ActionRecord;
use crate::{Hash, Store, StoreError, Tree};

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct VerifyProblem {
    pub path: PathBuf,
    pub problem: String,
}

#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub objects: u64,
    pub aliases: u64,
    pub actions: u64,
    pub problems: Vec<VerifyProblem>,
    pub repaired: u64,
}

fn hash_file(path: &PathBuf) -> io::Result<(Hash, [u8; 32], u64)> {
    let mut file = fs::File::open(path)?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Hash(*b3.finalize().as_bytes()), sha.finalize().into(), size))
}

pub(crate) fn run(store: &Store, repair: bool) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let objects = crate::object::walk_objects(store)?;
    report.objects = objects.len() as u64;
    let mut problems: Vec<VerifyProblem> = objects
        .par_iter()
        .filter_map(|(name, path)| match hash_file(path) {
            Ok((hash, _, _)) if hash.to_hex() == *name => None,
            Ok((hash, _, _)) => {
                Some(VerifyProblem { path: path.clone(), problem: format!("content hashes to {hash}") })
            }
            Err(e) => Some(VerifyProblem { path: path.clone(), problem: format!("unreadable: {e}") }),
        })
        .collect();

    let bad: std::collections::HashSet<Hash> =
        problems.iter().filter_map(|p| p.path.file_name()?.to_str()?.parse().ok()).collect();
    let usable = |id: &Hash| store.contains(id) && !bad.contains(id);

    let aliases = crate::object::walk_aliases(store)?;
    report.aliases = aliases.len() as u64;
    for (name, path) in &aliases {
        let text = fs::read_to_string(path).unwrap_or_default();
        match crate::object::parse_alias(&text) {
            None => problems.push(VerifyProblem { path: path.clone(), problem: "unparsable alias".into() }),
            Some((id, size)) => {
                let object = store.object_path(&id);
                match hash_file(&object) {
                    Ok((_, sha, actual)) if hex::encode(sha) == *name && actual == size => {}
                    Ok(_) => problems.push(VerifyProblem {
                        path: path.clone(),
                        problem: format!("object {id} does not have this sha256 and size"),
                    }),
                    Err(_) => {
                        problems.push(VerifyProblem { path: path.clone(), problem: format!("object {id} is missing") })
                    }
                }
            }
        }
    }

    let actions = crate::action::walk(store)?;
    report.actions = actions.len() as u64;
    for (_, path) in &actions {
        let record: Option<ActionRecord> = fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(record) = record else {
            problems.push(VerifyProblem { path: path.clone(), problem: "unparsable action record".into() });
            continue;
        };
        // A result made from an object now found damaged is suspect too. An input that is
        // merely gone (collected after its own record expired) is no problem.
        let damaged_input = record.inputs.iter().find(|input| {
            bad.contains(&input.id)
                || (input.kind == crate::RefKind::Tree
                    && store.contains(&input.id)
                    && fs::read(store.object_path(&input.id))
                        .ok()
                        .and_then(|b| Tree::from_bytes(&b).ok())
                        .is_some_and(|tree| tree.contents().any(|c| bad.contains(c))))
        });
        if let Some(input) = damaged_input {
            problems.push(VerifyProblem {
                path: path.clone(),
                problem: format!("was made from damaged object {}", input.id),
            });
            continue;
        }
        for output in &record.outputs {
            if !usable(&output.id) {
                problems.push(VerifyProblem {
                    path: path.clone(),
                    problem: format!("refers to missing or corrupt object {}", output.id),
                });
                continue;
            }
            if output.kind == crate::RefKind::Tree {
                match store.read(&output.id).ok().and_then(|b| Tree::from_bytes(&b).ok()) {
                    None => problems.push(VerifyProblem {
                        path: path.clone(),
                        problem: format!("tree {} is unreadable", output.id),
                    }),
                    Some(tree) => {
                        if let Some(missing) = tree.contents().find(|c| !usable(c)) {
                            problems.push(VerifyProblem {
                                path: path.clone(),
                                problem: format!("tree {} refers to missing object {missing}", output.id),
                            });
                        }
                    }
                }
            }
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup_by(|a, b| a.path == b.path);
    if repair {
        for problem in &problems {
            if fs::remove_file(&problem.path).is_ok() {
                report.repaired += 1;
            }
        }
    }
    report.problems = problems;
    Ok(report)
}
