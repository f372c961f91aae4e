//! Package relationship fields (`Depends`, `Pre-Depends`, `Conflicts`, `Breaks`, `Provides`):
//! comma-separated groups of `|`-separated alternatives, each `name[:arch] [(op version)]`.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    pub fn matches(self, ord: Ordering) -> bool {
        match self {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

impl Constraint {
    pub fn matches(&self, version: &str) -> bool {
        self.op.matches(crate::version::compare(version, &self.version))
    }
}

/// Which architecture qualifier a relation carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchQualifier {
    None,
    /// `:any`: satisfied by a package of any architecture that is `Multi-Arch: allowed`.
    Any,
    /// `:native` or an explicit architecture equal to the target's.
    Native,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub name: String,
    pub arch: ArchQualifier,
    pub constraint: Option<Constraint>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.arch == ArchQualifier::Any {
            f.write_str(":any")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({} {})", c.op.as_str(), c.version)?;
        }
        Ok(())
    }
}

/// One comma-separated group: any alternative satisfies it.
pub type Alternatives = Vec<Relation>;

/// Parses a relationship field of a binary package. Architecture restrictions (`[amd64]`)
/// only appear in source packages; they are dropped here.
pub fn parse_field(field: &str) -> Result<Vec<Alternatives>, BadRelation> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alternatives = Vec::new();
        for alt in group.split('|') {
            alternatives.push(parse_relation(alt.trim()).ok_or_else(|| BadRelation(alt.to_string()))?);
        }
        groups.push(alternatives);
    }
    Ok(groups)
}

/// A relation (`name (op version)`, with an architecture qualifier or not) that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse relation `{0}`")]
pub struct BadRelation(pub String);

pub fn parse_relation(text: &str) -> Option<Relation> {
    let text = text.split('[').next()?.trim();
    let (head, constraint) = match text.find('(') {
        Some(i) => {
            let inner = text[i + 1..].trim_end().strip_suffix(')')?.trim();
            let split = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
            let op = Op::parse(inner[..split].trim())?;
            let version = inner[split..].trim().to_string();
            if version.is_empty() {
                return None;
            }
            (text[..i].trim(), Some(Constraint { op, version }))
        }
        None => (text, None),
    };
    let (name, arch) = match head.split_once(':') {
        Some((name, "any")) => (name, ArchQualifier::Any),
        Some((name, _)) => (name, ArchQualifier::Native),
        None => (head, ArchQualifier::None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some(Relation { name: name.to_string(), arch, constraint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_alternatives_and_constraints() {
        let groups =
            parse_field("libc6 (>= 2.34), python3:any (<< 3.12) | python3-minimal, debconf (>= 0.5) | debconf-2.0")
                .unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0][0].constraint, Some(Constraint { op: Op::Ge, version: "2.34".into() }));
        assert_eq!(groups[1][0].arch, ArchQualifier::Any);
        assert_eq!(groups[1][1].name, "python3-minimal");
        assert_eq!(groups[2][1].to_string(), "debconf-2.0");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_field("foo (>= )").is_err());
        assert!(parse_field("foo (~~ 1)").is_err());
    }
}
