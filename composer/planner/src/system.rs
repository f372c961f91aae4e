//! The system layer: what no single package holds but a working image needs. The root skeleton
//! and usrmerge links, what the distribution's backend adds (for Debian: the dpkg database,
//! alternatives, the CA bundle), /etc/passwd and /etc/group from the backend's system accounts
//! plus the recipe's, home directories, and the recipe's own files.
//!
//! The image as the backend sees it ([`ImageView`]) and what the backend adds ([`SystemFiles`])
//! live here, so that the backend depends on this module and not the other way round.

use std::collections::BTreeMap;

use composer_recipe::{FileKind, Recipe};
use composer_store::held::{ContentSink, SinkError};
use composer_store::{EntryKind, Hash, Tree, TreeEntry};

use crate::BuildError;
pub use composer_distro::{ImageView, SystemFiles};

struct Builder<'a> {
    /// Where the files' contents go: held for a layer, into the store for a build root.
    contents: &'a mut dyn ContentSink,
    epoch: u64,
    entries: BTreeMap<String, TreeEntry>,
}

impl Builder<'_> {
    fn content(&mut self, data: &[u8]) -> Result<Hash, BuildError> {
        match self.contents.file(&mut &data[..], data.len() as u64) {
            Ok(content) => Ok(content),
            Err(SinkError::Store(e)) => Err(e.into()),
            Err(SinkError::Read(e)) => unreachable!("reading a slice of its own length cannot fail: {e}"),
        }
    }

    fn entry(&mut self, path: &str, kind: EntryKind, mode: u32, uid: u32, gid: u32) {
        let path = path.trim_start_matches('/').to_string();
        self.entries.insert(path.clone(), TreeEntry { path, kind, mode, uid, gid, mtime: self.epoch, xattrs: vec![] });
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<(), BuildError> {
        let content = self.content(data)?;
        self.entry(path, EntryKind::File { content, size: data.len() as u64, packed: None }, mode, 0, 0);
        Ok(())
    }

    fn link(&mut self, path: &str, target: &str) {
        self.entry(path, EntryKind::Symlink { target: target.to_string() }, 0o777, 0, 0);
    }

    /// Adds the missing parent directories of every entry (root-owned, 0755), as a tar
    /// extractor would create them.
    fn parents(&mut self, view: &ImageView<'_>) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for path in paths {
            let mut parent = path.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                parent = p;
                if !self.entries.contains_key(p) && !view.entries.contains_key(p) {
                    self.entry(p, EntryKind::Dir, 0o755, 0, 0);
                }
            }
        }
    }
}

pub struct SystemInputs<'a> {
    pub recipe: &'a Recipe,
    pub distro: SystemFiles,
    pub epoch: u64,
}

/// The system layer's tree; its files' contents go to `contents`.
pub fn system_tree(
    contents: &mut dyn ContentSink,
    view: &ImageView<'_>,
    inputs: &SystemInputs<'_>,
) -> Result<Tree, BuildError> {
    let mut b = Builder { contents, epoch: inputs.epoch, entries: BTreeMap::new() };

    for (dir, mode) in
        [("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("tmp", 0o1777), ("root", 0o700)]
    {
        if !view.entries.contains_key(dir) {
            b.entry(dir, EntryKind::Dir, mode, 0, 0);
        }
    }
    for dir in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let moved = format!("usr/{dir}");
        if view.entries.contains_key(&moved) || matches!(dir, "bin" | "sbin" | "lib") {
            b.link(dir, &moved);
        }
    }

    for (path, data, mode) in &inputs.distro.files {
        b.file(path, data, *mode)?;
    }
    for (link, target) in &inputs.distro.links {
        b.link(link, target);
    }

    accounts(&mut b, view, inputs)?;
    recipe_files(&mut b, inputs.recipe)?;
    b.parents(view);

    let mut tree = Tree { entries: b.entries.into_values().collect() };
    tree.normalize().map_err(composer_store::StoreError::from)?;
    Ok(tree)
}

fn accounts(b: &mut Builder<'_>, view: &ImageView<'_>, inputs: &SystemInputs<'_>) -> Result<(), BuildError> {
    let recipe = inputs.recipe;
    let mut passwd = inputs.distro.passwd.clone();
    let mut group = inputs.distro.group.clone();
    add_root(&mut passwd, &mut group);
    let mut gids: Vec<u32> = group.lines().filter_map(|l| l.split(':').nth(2)?.parse().ok()).collect();
    for g in &recipe.accounts.groups {
        group.push_str(&format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(",")));
        gids.push(g.gid);
    }
    for u in &recipe.accounts.users {
        let gid = u.gid.unwrap_or(u.uid);
        if !gids.contains(&gid) {
            group.push_str(&format!("{}:x:{gid}:\n", u.name));
            gids.push(gid);
        }
        let home = u.home.clone().unwrap_or_else(|| format!("/home/{}", u.name));
        passwd.push_str(&format!("{}:x:{}:{gid}:{}:{home}:{}\n", u.name, u.uid, u.gecos, u.shell));
        if home != "/" && !view.exists(&home) {
            b.entry(&home, EntryKind::Dir, 0o755, u.uid, gid);
        }
    }
    check_config_user(recipe, &passwd, &group)?;
    b.file("etc/passwd", passwd.as_bytes(), 0o644)?;
    b.file("etc/group", group.as_bytes(), 0o644)?;
    Ok(())
}

/// An image whose distribution gave no accounts (a musl image takes no package) still has root:
/// runtimes and tools look the user up. A table that has an id 0 keeps its own.
fn add_root(passwd: &mut String, group: &mut String) {
    let has_id_0 = |table: &str| table.lines().any(|l| l.split(':').nth(2) == Some("0"));
    if !has_id_0(passwd) {
        passwd.insert_str(0, "root:x:0:0:root:/root:/bin/sh\n");
    }
    if !has_id_0(group) {
        group.insert_str(0, "root:x:0:\n");
    }
}

/// `[config] user` must name an account (and group) the image's /etc/passwd and /etc/group
/// hold, or be numeric: a container runtime refuses to start an image whose user it cannot find.
fn check_config_user(recipe: &Recipe, passwd: &str, group: &str) -> Result<(), BuildError> {
    let Some(spec) = recipe.config.user.as_deref() else { return Ok(()) };
    let (user, grp) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
    let names = |table: &str| -> Vec<String> {
        table.lines().filter_map(|l| l.split(':').next()).map(str::to_string).collect()
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(user) && !names(passwd).iter().any(|n| n == user) {
        return Err(BuildError::ConfigUser {
            user: spec.to_string(),
            missing: format!("user `{user}`"),
            known: names(passwd).join(", "),
        });
    }
    if let Some(grp) = grp
        && !numeric(grp)
        && !names(group).iter().any(|n| n == grp)
    {
        return Err(BuildError::ConfigUser {
            user: spec.to_string(),
            missing: format!("group `{grp}`"),
            known: names(group).join(", "),
        });
    }
    Ok(())
}

fn recipe_files(b: &mut Builder<'_>, recipe: &Recipe) -> Result<(), BuildError> {
    for file in &recipe.files {
        let target = file.path.get_ref().clone();
        match file.kind {
            FileKind::Dir => b.entry(&target, EntryKind::Dir, file.mode, file.uid, file.gid),
            FileKind::Symlink => {
                let link = file.target.clone().unwrap_or_default();
                b.entry(&target, EntryKind::Symlink { target: link }, 0o777, file.uid, file.gid);
            }
            FileKind::File => {
                let data = match (&file.content, &file.source) {
                    (Some(content), _) => content.clone().into_bytes(),
                    (None, Some(source)) => {
                        crate::local::read(recipe, source, composer_store::userfile::Kind::LOCAL_FILE)
                            .map_err(|source| BuildError::UserFile {
                                what: format!("cannot add `{target}` to the image"),
                                source: Box::new(source),
                            })?
                            .1
                    }
                    (None, None) => unreachable!("validated when the recipe was parsed"),
                };
                let content = b.content(&data)?;
                b.entry(
                    &target,
                    EntryKind::File { content, size: data.len() as u64, packed: None },
                    file.mode,
                    file.uid,
                    file.gid,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_added_only_where_the_distribution_gave_no_id_0() {
        let (mut passwd, mut group) = (String::new(), String::new());
        super::add_root(&mut passwd, &mut group);
        assert_eq!((passwd.as_str(), group.as_str()), ("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n"));
        let (mut passwd, mut group) = ("root:x:0:0:root:/root:/bin/bash\n".to_string(), "root:x:0:\n".to_string());
        super::add_root(&mut passwd, &mut group);
        assert_eq!(passwd, "root:x:0:0:root:/root:/bin/bash\n");
        assert_eq!(group, "root:x:0:\n");
    }
}
