//! `${VAR}` and `${VAR:-default}` interpolation of mapping values.
//!
//! Interpolation runs on individual string values after YAML parsing, not on
//! the file text, so that line and column numbers stay those of the file and a
//! secret's value can never show up in a YAML syntax error.

use std::collections::HashMap;

use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};

/// Where variables come from. The process environment in production; a map
/// in tests and in `ebb demo`, which must not mutate the global environment.
pub trait Env: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;

    /// Every set variable whose name starts with `prefix`, sorted by name: a cloud's credential
    /// chain reads its own (`AWS_*`), whatever they are.
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        process_vars_with_prefix(prefix)
    }
}

fn process_vars_with_prefix(prefix: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    vars.sort();
    vars
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Variables from a map first, then from the process environment.
pub struct OverlayEnv(pub HashMap<String, String>);

impl Env for OverlayEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| std::env::var(name).ok())
    }

    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let mut vars: std::collections::BTreeMap<String, String> = process_vars_with_prefix(prefix).into_iter().collect();
        vars.extend(
            self.0
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        vars.into_iter().collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum InterpolateError {
    Unset(String),
    Unterminated,
    BadName(String),
}

impl std::fmt::Display for InterpolateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unset(name) => {
                let name = shorten(name, MAX_QUOTED_CHARS);
                write!(
                    f,
                    "environment variable `{name}` is not set (set it, or give a default with `${{{name}:-default}}`)"
                )
            }
            Self::Unterminated => f.write_str("`${` without a closing `}`"),
            Self::BadName(name) => write!(f, "{} is not a valid environment variable name", quote(name)),
        }
    }
}

/// A piece of a mapping value: literal text, or a `${NAME}` / `${NAME:-default}` reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Literal(std::borrow::Cow<'a, str>),
    Var { name: &'a str, default: Option<&'a str> },
}

/// Splits a value into literal text and references; `$$` is a literal `$`.
pub fn pieces(input: &str) -> Result<Vec<Piece<'_>>, InterpolateError> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            literal.push('$');
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start.find('}').ok_or(InterpolateError::Unterminated)?;
            let body = &body_start[..end];
            let (name, default) = match body.find(":-") {
                Some(i) => (&body[..i], Some(&body[i + 2..])),
                None => (body, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(InterpolateError::BadName(name.to_string()));
            }
            if !literal.is_empty() {
                out.push(Piece::Literal(std::mem::take(&mut literal).into()));
            }
            out.push(Piece::Var { name, default });
            rest = &body_start[end + 1..];
        } else {
            literal.push('$');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Piece::Literal(literal.into()));
    }
    Ok(out)
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
/// An empty variable counts as unset for `:-`, as in POSIX shells.
pub fn interpolate(input: &str, env: &dyn Env) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(input.len());
    for piece in pieces(input)? {
        match piece {
            Piece::Literal(text) => out.push_str(&text),
            Piece::Var { name, default } => match (env.var(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(InterpolateError::Unset(name.to_string())),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OverlayEnv {
        OverlayEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn cases() {
        let e = env(&[("EBB_T_A", "alpha"), ("EBB_T_EMPTY", "")]);
        let cases: &[(&str, Result<&str, InterpolateError>)] = &[
            ("plain", Ok("plain")),
            ("${EBB_T_A}", Ok("alpha")),
            ("x-${EBB_T_A}-y", Ok("x-alpha-y")),
            ("${EBB_T_UNSET_Q:-dflt}", Ok("dflt")),
            ("${EBB_T_EMPTY:-dflt}", Ok("dflt")),
            ("${EBB_T_A:-dflt}", Ok("alpha")),
            ("cost $5", Ok("cost $5")),
            ("$${EBB_T_A}", Ok("${EBB_T_A}")),
            ("${EBB_T_UNSET_Q}", Err(InterpolateError::Unset("EBB_T_UNSET_Q".into()))),
            ("${EBB_T_A", Err(InterpolateError::Unterminated)),
            ("${1BAD}", Err(InterpolateError::BadName("1BAD".into()))),
        ];
        for (input, want) in cases {
            let got = interpolate(input, &e);
            assert_eq!(
                got.as_deref().map_err(|e| e.to_string()),
                want.as_ref().map(|s| *s).map_err(|e| e.to_string()),
                "{input}"
            );
        }
    }
}
