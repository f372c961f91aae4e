//! deb822 control paragraphs (`Packages`, `Release`, a .deb's `control`, `.sources` files).

/// One paragraph: fields in file order, names as written, values with continuation lines joined
/// by `\n` (their leading space removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
}

impl Paragraph {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Splits `text` into paragraphs. Comment lines (`#`) are skipped, as deb822 allows.
pub fn parse(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut current = Paragraph::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = current.fields.last_mut() {
                value.push('\n');
                value.push_str(&line[1..]);
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            current.fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.fields.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_continuations_and_paragraphs() {
        let paragraphs = super::parse("Package: a\nDescription: x\n more\n .\n\n\nPackage: b\n");
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].get("description"), Some("x\nmore\n."));
        assert_eq!(paragraphs[1].get("Package"), Some("b"));
    }
}
