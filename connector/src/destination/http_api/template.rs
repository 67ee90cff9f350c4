//! The `http` destination's templates: `body`, rendered once a batch with the batch as
//! `records`, and `delete.url`, rendered once a record with its identity as `id`. minijinja, in
//! strict mode: a template that names any other variable is refused when it is compiled, not
//! when a run renders it.
//!
//! `urlencode` is ebb's own, not minijinja's: minijinja's leaves `/` alone, so an id
//! `team/ops-7` would address another resource, and a 404 there would mark a live record
//! deleted. Ours makes any id one path segment, and an id that no segment can name (empty, `.`,
//! `..`) is refused with a reason.

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// One record as `body` sees it: `r.id` and `r.fields`.
#[derive(Debug, Serialize)]
pub struct RecordView<'a> {
    pub id: &'a str,
    pub fields: &'a serde_json::Map<String, serde_json::Value>,
}

/// Why a template cannot be used, or could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{what}: {message} (line {line} of the template)")]
    Compile { what: &'static str, line: usize, message: String },
    #[error("{what} refers to {names}, which {is} not defined: only `{allowed}` is")]
    Unknown {
        what: &'static str,
        names: String,
        is: &'static str,
        allowed: &'static str,
    },
    #[error("{what} could not be rendered: {message}")]
    Render { what: &'static str, message: String },
    #[error("id {id} cannot be one segment of a URL: {why}")]
    Segment { id: String, why: &'static str },
}

const BODY: &str = "body";
const DELETE_URL: &str = "delete.url";

/// The compiled templates of one mapping.
pub struct Templates {
    env: Environment<'static>,
    has_delete: bool,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("has_delete", &self.has_delete).finish()
    }
}

impl Templates {
    /// Compiles `body` and, for mirror mode, `delete.url`, and checks that each names only the
    /// variable it is given.
    pub fn compile(body: &str, delete_url: Option<&str>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("urlencode", urlencode_filter);
        add(&mut env, BODY, body, "records")?;
        if let Some(url) = delete_url {
            add(&mut env, DELETE_URL, url, "id")?;
        }
        Ok(Templates {
            env,
            has_delete: delete_url.is_some(),
        })
    }

    /// The body of one request: the batch as `records`.
    pub fn body(&self, records: &[RecordView<'_>]) -> Result<String, TemplateError> {
        let rendered = self
            .env
            .get_template(BODY)
            .and_then(|t| t.render(minijinja::context! { records => Value::from(minijinja::value::Serde(records)) }));
        rendered.map_err(|e| render_error(BODY, &e))
    }

    /// The URL that deletes `id`, if the mapping has `delete:`. An id no path segment can name
    /// is refused before anything is rendered.
    pub fn delete_url(&self, id: &str) -> Result<Option<String>, TemplateError> {
        if !self.has_delete {
            return Ok(None);
        }
        check_segment(id)?;
        let rendered = self
            .env
            .get_template(DELETE_URL)
            .and_then(|t| t.render(minijinja::context! { id => id }));
        rendered.map(Some).map_err(|e| render_error(DELETE_URL, &e))
    }
}

/// Compiles `source` as `name`, which may name only `allowed`.
fn add(env: &mut Environment<'static>, name: &'static str, source: &str, allowed: &'static str) -> Result<(), TemplateError> {
    env.add_template_owned(name, source.to_string())
        .map_err(|e| TemplateError::Compile {
            what: name,
            line: e.line().unwrap_or(1),
            message: e.detail().unwrap_or(&e.to_string()).to_string(),
        })?;
    let template = env.get_template(name).map_err(|e| render_error(name, &e))?;
    let mut unknown: Vec<String> = template.undeclared_variables(false).into_iter().filter(|v| v != allowed).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let is = if unknown.len() == 1 { "is" } else { "are" };
    Err(TemplateError::Unknown {
        what: name,
        names: unknown.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
        is,
        allowed,
    })
}

fn render_error(what: &'static str, e: &minijinja::Error) -> TemplateError {
    TemplateError::Render {
        what,
        message: e.detail().unwrap_or(&e.to_string()).to_string(),
    }
}

/// Every byte outside ALPHA, DIGIT, `-`, `_` and `~` percent-encoded: RFC 3986's unreserved set
/// without `.`, so that `.` and `..` never reach a path as themselves, and `/` always encoded.
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn urlencode_filter(value: &Value) -> String {
    match value.as_str() {
        Some(text) => urlencode(text),
        None => urlencode(&value.to_string()),
    }
}

/// An id that no path segment can name, even encoded: servers and proxies take `.` and `..`
/// (and their encodings) as path steps, and an empty segment as no segment.
pub fn check_segment(id: &str) -> Result<(), TemplateError> {
    let why = match id {
        "" => "it is empty",
        "." | ".." => "servers read it as a step in the path, not a name",
        _ => return Ok(()),
    };
    Err(TemplateError::Segment {
        id: format!("`{id}`"),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY_TEMPLATE: &str = r#"{"people": [{% for r in records %}{"external_id": {{ r.id | tojson }}, "traits": {{ r.fields | tojson }}}{% if not loop.last %},{% endif %}{% endfor %}]}"#;

    fn fields(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn the_issues_body_renders_a_batch_as_json() {
        let t = Templates::compile(BODY_TEMPLATE, None).expect("compiles");
        let (a, b) = (
            fields(&[("plan", "pro".into()), ("seats", 7.into())]),
            fields(&[("tags", serde_json::json!(["a", "b\"c"]))]),
        );
        let body = t
            .body(&[RecordView { id: "u-1", fields: &a }, RecordView { id: "u\"2", fields: &b }])
            .expect("renders");
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"people": [
                {"external_id": "u-1", "traits": {"plan": "pro", "seats": 7}},
                {"external_id": "u\"2", "traits": {"tags": ["a", "b\"c"]}}
            ]})
        );
    }

    #[test]
    fn a_template_that_names_another_variable_or_does_not_compile_is_refused_with_its_line() {
        let err = Templates::compile("{{ records | tojson }}{{ user }}{{ env }}", None).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "body refers to `env`, `user`, which are not defined: only `records` is"
        );
        let err = Templates::compile("[\n{% for r in %}\n]", None).expect_err("refused");
        assert!(matches!(err, TemplateError::Compile { line: 2, .. }), "{err:?}");
        let err = Templates::compile("{}", Some("https://x/{{ record }}")).expect_err("refused");
        assert_eq!(err.to_string(), "delete.url refers to `record`, which is not defined: only `id` is");
    }

    #[test]
    fn urlencode_makes_any_id_one_path_segment() {
        let t = Templates::compile("{}", Some("https://api.example/v2/people/{{ id | urlencode }}")).expect("compiles");
        let url = |id: &str| t.delete_url(id).expect("renders").expect("a delete URL");
        assert_eq!(url("team/ops-7"), "https://api.example/v2/people/team%2Fops-7");
        assert_eq!(url("a.b c?d#e%f"), "https://api.example/v2/people/a%2Eb%20c%3Fd%23e%25f");
        assert_eq!(url("é~_-"), "https://api.example/v2/people/%C3%A9~_-");
        for id in ["", ".", ".."] {
            let err = t.delete_url(id).expect_err("refused");
            assert!(matches!(err, TemplateError::Segment { .. }), "{id:?}: {err}");
        }
        let without = Templates::compile("{}", None).expect("compiles");
        assert_eq!(without.delete_url("x"), Ok(None));
    }
}
