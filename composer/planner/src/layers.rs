//! Grouping packages into layers so that two recipes sharing packages share layer digests: one
//! layer per package, the largest first, until the budget is spent; the rest share one layer.
//! The system layer (package database, accounts, recipe files) always comes last.

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
    let items: Vec<(&str, u64)> = packages.iter().map(|p| (p.name.as_str(), p.size)).collect();
    largest_alone(&items, budget)
}

/// Indexes of `items` (name, size) in at most `layers` groups: the largest items one group each,
/// in name order, then the rest together, in name order. Sizes pick who is alone; names fix the
/// order, so the same items give the same groups.
pub fn largest_alone(items: &[(&str, u64)], layers: usize) -> Vec<Vec<usize>> {
    if items.len() <= layers {
        return (0..items.len()).map(|i| vec![i]).collect();
    }
    let mut by_size: Vec<usize> = (0..items.len()).collect();
    by_size.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then_with(|| items[a].0.cmp(items[b].0)));
    let (own, rest) = by_size.split_at(layers.saturating_sub(1));
    let by_name = |group: &[usize]| {
        let mut group = group.to_vec();
        group.sort_by(|&a, &b| items[a].0.cmp(items[b].0));
        group
    };
    let mut groups: Vec<Vec<usize>> = by_name(own).into_iter().map(|i| vec![i]).collect();
    groups.push(by_name(rest));
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
            filename: format!("{name}.pkg"),
            size,
            identity: composer_distro::Identity::file_sha256(&composer_store::Sha256([0; 32])),
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
