//! Locating YAML errors that serde_yaml reports without a position.

/// serde_yaml reports a file holding a second YAML document (a stray `---`, or a line indented less than the
/// block it ends, which starts a new document) without a position. The 1-based line where that second
/// document starts is the first line whose prefix of the text already holds two documents.
pub fn second_document_line(text: &str) -> Option<usize> {
    let mut end = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        end += line.len();
        let err = serde_yaml::from_str::<serde::de::IgnoredAny>(&text[..end]).err();
        if err.is_some_and(|e| e.location().is_none() && e.to_string().contains("more than one document")) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::second_document_line;

    #[test]
    fn finds_the_line_of_the_second_document() {
        assert_eq!(second_document_line("a: 1\n---\nb: 2\n"), Some(2));
        // Less indented than the mapping it follows: libyaml ends the document there.
        assert_eq!(second_document_line("# c\n a: 1\nb: 2\n"), Some(3));
        assert_eq!(second_document_line("a: 1\n...\nb\n"), Some(3));
        assert_eq!(second_document_line("a: 1\nb: 2\n"), None);
        assert_eq!(second_document_line("a: [\n"), None);
    }
}
