//! Reading a mapping file and turning serde-saphyr's errors into [`ConfigIssue`]s.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

use super::issue::{did_you_mean, ConfigErrors, ConfigIssue};
use crate::quote::shorten_quoted;

/// The text of a file, or one issue saying why it cannot be read.
pub fn read(path: &Path, what: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigIssue::whole_file(
            path.to_path_buf(),
            format!("cannot read {what}: {e}"),
        )])
    })
}

/// `text` parsed as `T`, or the one issue that stopped the parser.
pub fn from_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigErrors> {
    serde_saphyr::from_str(text).map_err(|e| ConfigErrors(vec![yaml_issue(path, &e)]))
}

/// The position comes from the error's own location and the message from the crate's formatter,
/// which leaves the position out: no parsing of the English text for either.
fn yaml_issue(path: &Path, e: &serde_saphyr::Error) -> ConfigIssue {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let text = serde_saphyr::DefaultMessageFormatter.format_message(e);
    // Its messages quote names from the file (an unknown field), which may be of any length,
    // and the formatter's raw text may hold line breaks: keep the first line.
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid YAML");
    let mut message = shorten_quoted(first_line);
    if let Some((kept, _)) = message.split_once(", set DuplicateKeyPolicy") {
        // Advice meant for programs embedding the parser, not for mapping authors.
        message = kept.to_string();
    }
    let hint = unknown_name_hint(&message);
    ConfigIssue {
        hint,
        line,
        column,
        message,
        ..ConfigIssue::whole_file(path.to_path_buf(), String::new())
    }
}

/// serde says "unknown field `colum`, expected one of `column`, `value`";
/// turn that list into a did-you-mean.
fn unknown_name_hint(message: &str) -> Option<String> {
    let rest = message
        .split("unknown field `")
        .nth(1)
        .or_else(|| message.split("unknown variant `").nth(1))?;
    let wanted = rest.split('`').next()?;
    let expected = message.split("expected ").nth(1)?;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    did_you_mean(wanted, candidates)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        column: String,
        value: Option<String>,
    }

    #[test]
    fn an_unknown_key_gets_its_position_a_message_without_it_and_a_hint() {
        let err = super::from_str::<BTreeMap<String, Two>>(Path::new("m.yml"), "a:\n  colum: x\n").expect_err("unknown");
        let issue = &err.0[0];
        assert_eq!((issue.line, issue.column), (2, 3));
        assert!(issue.message.starts_with("unknown field `colum`"), "{}", issue.message);
        assert!(!issue.message.contains("line"), "the position is not repeated: {}", issue.message);
        assert_eq!(issue.hint.as_deref(), Some("column"));
    }

    #[test]
    fn a_syntax_error_has_a_position_and_one_line() {
        let err = super::from_str::<BTreeMap<String, String>>(Path::new("m.yml"), "a: [1,\n").expect_err("broken");
        let issue = &err.0[0];
        assert!(issue.line >= 1, "{issue:?}");
        assert!(!issue.message.contains('\n') && !issue.message.is_empty(), "{issue:?}");
    }

    #[test]
    fn duplicate_keys_drop_the_advice_for_embedders() {
        let err = super::from_str::<BTreeMap<String, String>>(Path::new("m.yml"), "a: 1\na: 2\n").expect_err("dup");
        let issue = &err.0[0];
        assert_eq!(issue.line, 2, "{issue:?}");
        assert!(!issue.message.contains("DuplicateKeyPolicy"), "{}", issue.message);
    }
}
