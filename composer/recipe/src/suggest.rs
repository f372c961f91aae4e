//! "Did you mean": the nearest of the names a word could have been meant as.

/// How alike two names must be (Jaro–Winkler, 0 to 1) for one to be offered for the other: the
/// threshold clap uses for subcommands, so `pakages` finds `packages` and `x` finds nothing.
const ALIKE: f64 = 0.8;

/// The candidates most like `word`, best first, at most `count` of them; none that are not
/// alike enough (a suggestion that is far off misleads more than none).
pub fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>, count: usize) -> Vec<&'c str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= ALIKE)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(count).map(|(_, c)| c).collect()
}

/// ` (did you mean `a` or `b`?)`, or nothing when there is no near name.
pub fn did_you_mean(near: &[&str]) -> String {
    match near {
        [] => String::new(),
        [one] => format!("did you mean `{one}`?"),
        more => {
            let quoted: Vec<String> = more.iter().map(|n| format!("`{n}`")).collect();
            let (last, rest) = quoted.split_last().expect("more than one");
            format!("did you mean {} or {last}?", rest.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_offered_and_far_ones_are_not() {
        let keys = ["packages", "suite", "mirror", "keyring", "distro"];
        assert_eq!(nearest("pakages", keys, 3), vec!["packages"]);
        assert_eq!(nearest("mirorr", keys, 3), vec!["mirror"]);
        assert!(nearest("zzz", keys, 3).is_empty());
        assert!(nearest("packages", keys, 3).is_empty(), "the word itself is no suggestion");
        assert_eq!(did_you_mean(&["a", "b", "c"]), "did you mean `a`, `b` or `c`?");
        assert_eq!(did_you_mean(&[]), "");
    }
}
