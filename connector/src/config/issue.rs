//! Problems in mapping files: where they are (`file:line:column` and the field) and what they are.

use std::fmt;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use crate::quote::{quote, shorten, MAX_MESSAGE_CHARS};

/// A place in a mapping file plus the field it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
    pub field: String,
}

impl Loc {
    /// Where a parsed value was written.
    pub fn of<T>(spanned: &Spanned<T>, field: impl Into<String>) -> Loc {
        Loc {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field: field.into(),
        }
    }

    /// The same place, for a field inside this one (`attributes.Age` → `attributes.Age.column`).
    pub fn child(&self, name: &str) -> Loc {
        Loc {
            field: format!("{}.{name}", self.field),
            ..self.clone()
        }
    }
}

/// One problem in one mapping file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigIssue {
    /// A problem with the file as a whole (it cannot be read, say).
    pub fn whole_file(file: PathBuf, message: String) -> ConfigIssue {
        ConfigIssue {
            file,
            line: 0,
            column: 0,
            field: String::new(),
            message,
            hint: None,
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        write!(f, "{}:{}:{}: ", shorten(&file, MAX_MESSAGE_CHARS), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", shorten(&self.field, MAX_MESSAGE_CHARS))?;
        }
        // Each message quotes its values cut already; this caps what is left.
        f.write_str(&shorten(&self.message, MAX_MESSAGE_CHARS))?;
        if let Some(hint) = &self.hint {
            write!(f, " (did you mean {}?)", quote(hint))?;
        }
        Ok(())
    }
}

/// Every problem found in one or more mapping files.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `wanted`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted_lower = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wanted_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}
