//! Grouping packages into layers so that two recipes sharing packages share layer digests: one
//! layer per package, the largest first, until the budget is spent; the rest share one layer.
//! The system layer (dpkg database, accounts, recipe files) always comes last.

use crate::lockfile::LockedPackage;
use composer_recipe::LayerStrategy;

/// Groups of indexes into `packages`, in layer order.
pub fn group(packages: &[LockedPackage], strategy: LayerStrategy, max_layers: usize) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..packages.len()).collect();
    if packages.is_empty() {
        return Vec::new();
    }
    let budget = max_layers.max(2) - 1;
    if strategy == LayerStrategy::Single || budget == 1 {
        return vec![all];
    }
    if packages.len() <= budget {
        return all.into_iter().map(|i| vec![i]).collect();
    }
    let mut by_size = all.clone();
    by_size.sort_by(|&a, &b| {
        packages[b].size.cmp(&packages[a].size).then_with(|| packages[a].name.cmp(&packages[b].name))
    });
    let (own, rest) = by_size.split_at(budget - 1);
    let mut own = own.to_vec();
    own.sort_by(|&a, &b| packages[a].name.cmp(&packages[b].name));
    let mut rest = rest.to_vec();
    rest.sort_by(|&a, &b| packages[a].name.cmp(&packages[b].name));
    let mut groups: Vec<Vec<usize>> = own.into_iter().map(|i| vec![i]).collect();
    groups.push(rest);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, size: u64) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1".into(),
            architecture: "all".into(),
            source: name.into(),
            filename: format!("pool/{name}.deb"),
            size,
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn largest_packages_get_their_own_layers_within_budget() {
        let packages = [pkg("a", 1), pkg("b", 50), pkg("c", 10), pkg("d", 30)];
        // Budget 3 = 2 package layers + system layer: b alone, the rest merged.
        assert_eq!(group(&packages, LayerStrategy::PerPackage, 3), vec![vec![1], vec![0, 2, 3]]);
        assert_eq!(group(&packages, LayerStrategy::PerPackage, 10).len(), 4);
        assert_eq!(group(&packages, LayerStrategy::Single, 10), vec![vec![0, 1, 2, 3]]);
    }
}
