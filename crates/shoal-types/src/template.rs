//! Go-template rendering of job files, as `bacalhau job run -V key=value FILE` does.
//!
//! Job files in the wild use a small part of Go's `text/template`: `{{.key}}`,
//! `{{ .key }}`, `{{index . "key"}}` for keys that are not identifiers (`start-time`) and
//! `{{or (index . "key") "default"}}` for defaults. This module supports exactly that family:
//! field and `index` lookups, string literals, parentheses, the functions `or`, `and`, `not`,
//! `eq`, `ne` and `index`, comments and the `{{-`/`-}}` whitespace trimmers. Anything else is
//! an error naming the construct, rather than output that silently differs from Go's.
//!
//! A variable that is used but not given is an error that names it and says to pass
//! `-V key=value`. Go prints `<no value>` instead, which then runs a job with that literal text
//! as an argument or image tag; failing before submission is the fix users ask for. Inside
//! `or` a missing variable is simply false, so defaults keep working.

use std::collections::{BTreeMap, BTreeSet};

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Variables used by the template were not given.
    #[error(
        "template variable{} not set: {}; pass {} with -V key=value (e.g. -V {}=...)",
        if .names.len() == 1 { "" } else { "s" },
        .names.join(", "),
        if .names.len() == 1 { "it" } else { "each" },
        .names[0]
    )]
    Missing {
        /// The missing names, sorted.
        names: Vec<String>,
    },
    /// An action that is malformed or uses something this renderer does not support.
    #[error("template line {line}: {message}")]
    Syntax {
        /// 1-based line of the action.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Whether the text contains template actions (`{{ ... }}`) and so needs rendering.
pub fn has_actions(text: &str) -> bool {
    text.find("{{")
        .is_some_and(|start| text[start + 2..].contains("}}"))
}

/// Renders `text` with `vars` as the template's data (`.`).
///
/// All missing variables are reported together, so that one run tells the user every `-V`
/// they need.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut missing = BTreeSet::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(open) = rest.find("{{") {
        let line = text[..consumed + open].matches('\n').count() + 1;
        let syntax = |message: String| TemplateError::Syntax { line, message };
        let mut literal = &rest[..open];
        let mut body_start = open + 2;
        if rest[body_start..].starts_with('-')
            && rest[body_start + 1..].starts_with(char::is_whitespace)
        {
            literal = literal.trim_end();
            body_start += 1;
        }
        out.push_str(literal);
        let close = find_close(&rest[body_start..])
            .ok_or_else(|| syntax("unclosed action: add }}".into()))?;
        let mut body = &rest[body_start..body_start + close];
        let mut after = body_start + close + 2;
        let trim_after =
            body.ends_with('-') && body[..body.len() - 1].ends_with(char::is_whitespace);
        if trim_after {
            body = &body[..body.len() - 1];
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            let tokens = tokenize(body).map_err(syntax)?;
            let mut parser = Parser {
                tokens: &tokens,
                pos: 0,
            };
            let expr = parser.command().map_err(syntax)?;
            if parser.pos != tokens.len() {
                return Err(syntax(format!(
                    "unexpected {} in {{{{{body}}}}}",
                    tokens[parser.pos].describe()
                )));
            }
            match eval(&expr, vars).map_err(syntax)? {
                Val::Str(s) => out.push_str(&s),
                Val::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                Val::Missing(name) => {
                    missing.insert(name);
                }
                Val::Dot => {
                    return Err(syntax(
                        "{{.}} prints all variables; name one, e.g. {{.key}}".into(),
                    ));
                }
            }
        }
        if trim_after {
            let trimmed = rest[after..].trim_start();
            after = rest.len() - trimmed.len();
        }
        consumed += after;
        rest = &rest[after..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Missing {
            names: missing.into_iter().collect(),
        })
    }
}

/// Position of the `}}` that closes an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == b'\\' && q == b'"' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'`' => quote = Some(b),
            None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dot,
    Field(String),
    Str(String),
    Ident(String),
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Dot => "'.'".into(),
            Token::Field(f) => format!("'.{f}'"),
            Token::Str(s) => format!("{s:?}"),
            Token::Ident(i) => format!("'{i}'"),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn tokenize(body: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = body.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push(Token::Open);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::Close);
            i += 1;
        } else if c == '.' {
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            if end == start {
                tokens.push(Token::Dot);
            } else {
                tokens.push(Token::Field(chars[start..end].iter().collect()));
            }
            if end < chars.len() && chars[end] == '.' {
                return Err(
                    "nested fields (.a.b) are not supported: variables are flat; use {{.key}}"
                        .into(),
                );
            }
            i = end;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('"') => break,
                    Some('\\') => {
                        let escaped = match chars.get(i + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some(&other) => other,
                            None => return Err("unterminated string literal".into()),
                        };
                        s.push(escaped);
                        i += 2;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
            i += 1;
        } else if c == '`' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '`')
                .ok_or("unterminated raw string literal")?;
            tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '|' {
            return Err(
                "pipelines (|) are not supported; call the function directly, e.g. {{or .a \"x\"}}"
                    .into(),
            );
        } else if c == '$' {
            return Err("template variables ($x) are not supported; use {{.key}}".into());
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(tokens)
}

#[derive(Debug)]
enum Expr {
    Dot,
    Field(String),
    Str(String),
    Call(String, Vec<Expr>),
}

const FUNCTIONS: [&str; 6] = ["or", "and", "not", "eq", "ne", "index"];
const CONTROL: [&str; 8] = [
    "if", "else", "end", "range", "with", "define", "template", "block",
];

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    /// A command: a function applied to arguments, or a single operand.
    fn command(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos) {
            None => Err("empty action {{}}".into()),
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.pos += 1;
                if CONTROL.contains(&name.as_str()) {
                    return Err(format!(
                        "{name} actions are not supported; only variable lookups and or/index"
                    ));
                }
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(format!(
                        "function {name:?} is not supported (supported: {})",
                        FUNCTIONS.join(", ")
                    ));
                }
                let mut args = Vec::new();
                while self.pos < self.tokens.len() && self.tokens[self.pos] != Token::Close {
                    args.push(self.operand()?);
                }
                Ok(Expr::Call(name, args))
            }
            Some(_) => self.operand(),
        }
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let token = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or("missing argument")?;
        self.pos += 1;
        match token {
            Token::Dot => Ok(Expr::Dot),
            Token::Field(f) => Ok(Expr::Field(f)),
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Open => {
                let inner = self.command()?;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err("missing ')'".into()),
                }
            }
            Token::Ident(name) => Err(format!(
                "function {name:?} needs parentheses when used as an argument: ({name} ...)"
            )),
            Token::Close => Err("unexpected ')'".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Dot,
    Str(String),
    Bool(bool),
    Missing(String),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Dot => true,
            Val::Str(s) => !s.is_empty(),
            Val::Bool(b) => *b,
            Val::Missing(_) => false,
        }
    }
}

fn eval(expr: &Expr, vars: &BTreeMap<String, String>) -> Result<Val, String> {
    let lookup = |name: &str| match vars.get(name) {
        Some(v) => Val::Str(v.clone()),
        None => Val::Missing(name.to_string()),
    };
    Ok(match expr {
        Expr::Dot => Val::Dot,
        Expr::Field(f) => lookup(f),
        Expr::Str(s) => Val::Str(s.clone()),
        Expr::Call(name, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, vars))
                .collect::<Result<Vec<_>, _>>()?;
            match name.as_str() {
                "index" => match vals.as_slice() {
                    [Val::Dot, Val::Str(key)] => lookup(key),
                    _ => {
                        return Err(
                            "index takes the data and a quoted key: (index . \"key\")".into()
                        );
                    }
                },
                // Go's or/and return the deciding argument itself, not a boolean.
                "or" if !vals.is_empty() => vals
                    .iter()
                    .find(|v| v.truthy())
                    .unwrap_or(&vals[vals.len() - 1])
                    .clone(),
                "and" if !vals.is_empty() => vals
                    .iter()
                    .find(|v| !v.truthy())
                    .unwrap_or(&vals[vals.len() - 1])
                    .clone(),
                "not" if vals.len() == 1 => Val::Bool(!vals[0].truthy()),
                "eq" | "ne" if vals.len() == 2 => {
                    for v in &vals {
                        if let Val::Missing(n) = v {
                            return Ok(Val::Missing(n.clone()));
                        }
                    }
                    Val::Bool((vals[0] == vals[1]) == (name == "eq"))
                }
                _ => return Err(format!("wrong number of arguments to {name}")),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn field_lookups_with_and_without_spaces() {
        let v = vars(&[("greeting", "hi"), ("name", "x")]);
        assert_eq!(
            render("echo {{.greeting}} {{ .name }}", &v).unwrap(),
            "echo hi x"
        );
    }

    #[test]
    fn index_reads_keys_that_are_not_identifiers() {
        let v = vars(&[("start-time", "10:00")]);
        assert_eq!(
            render(r#"- {{index . "start-time"}}"#, &v).unwrap(),
            "- 10:00"
        );
    }

    #[test]
    fn or_falls_back_to_its_default_when_the_variable_is_missing_or_empty() {
        let t = r#"--dir={{or (index . "dir") "/app"}}"#;
        assert_eq!(render(t, &vars(&[])).unwrap(), "--dir=/app");
        assert_eq!(render(t, &vars(&[("dir", "")])).unwrap(), "--dir=/app");
        assert_eq!(
            render(t, &vars(&[("dir", "/data")])).unwrap(),
            "--dir=/data"
        );
        assert_eq!(
            render(r#"{{or (index . "end-time") ""}}"#, &vars(&[])).unwrap(),
            ""
        );
    }

    #[test]
    fn missing_variables_are_named_together_with_the_fix() {
        let err = render("{{.query}} {{.a}} {{.query}}", &vars(&[])).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing {
                names: vec!["a".into(), "query".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "template variables not set: a, query; pass each with -V key=value (e.g. -V a=...)"
        );
        let one = render("{{index . \"k\"}}", &vars(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            one,
            "template variable not set: k; pass it with -V key=value (e.g. -V k=...)"
        );
    }

    #[test]
    fn trim_markers_and_comments_behave_as_in_go() {
        let v = vars(&[("a", "1")]);
        assert_eq!(render("x  {{- .a -}}  y", &v).unwrap(), "x1y");
        assert_eq!(render("x{{/* note */}}y", &v).unwrap(), "xy");
    }

    #[test]
    fn unsupported_constructs_are_errors_with_their_line() {
        let err = render("a\n{{ if .x }}b{{ end }}", &vars(&[])).unwrap_err();
        assert!(
            matches!(err, TemplateError::Syntax { line: 2, .. }),
            "{err}"
        );
        assert!(
            render("{{ .a | upper }}", &vars(&[("a", "x")]))
                .unwrap_err()
                .to_string()
                .contains("pipelines")
        );
        assert!(
            render("{{ .a ", &vars(&[]))
                .unwrap_err()
                .to_string()
                .contains("unclosed")
        );
        assert!(
            render("{{ printf \"%s\" .a }}", &vars(&[]))
                .unwrap_err()
                .to_string()
                .contains("\"printf\" is not supported")
        );
    }

    #[test]
    fn text_without_actions_is_unchanged() {
        let t = "Key: yolo-results/{date}/{time}/{jobID}\n";
        assert!(!has_actions(t));
        assert_eq!(render(t, &vars(&[])).unwrap(), t);
        assert!(has_actions("count: {{.count}}"));
    }
}
