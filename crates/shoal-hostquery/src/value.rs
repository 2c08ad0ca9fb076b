//! The values a host table produces and a query returns.

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

/// One SQL value, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`; osquery renders it as an empty string.
    Null,
    /// A 64-bit integer (`INTEGER`, `BIGINT`, `UNSIGNED_BIGINT` columns).
    Integer(i64),
    /// A floating point number (`DOUBLE` columns).
    Real(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// The value as typed JSON: numbers stay numbers, `NULL` becomes `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => (*i).into(),
            Value::Real(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => s.clone().into(),
        }
    }

    /// The value as `osqueryi --json` prints it: every value is a string and `NULL` is `""`.
    pub fn to_osquery_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(s) => s.clone(),
        }
    }

    /// The text of a `Text` value, if it is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer when it is one or is text that parses as one (SQLite's
    /// affinity rules let `WHERE uid = '0'` reach a table as text).
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Bytes this value takes in a result, for the result-size limit.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Value::Text(s) => s.len() + 8,
            _ => 8,
        }
    }

    pub(crate) fn from_sql(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            // No host table yields blobs; SQL functions such as randomblob() can, and a
            // lossy text keeps JSON output printable.
            ValueRef::Blob(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(v as i64)
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for Value {
    /// Saturates at `i64::MAX`: SQLite has no unsigned 64-bit integer.
    fn from(v: u64) -> Self {
        Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osquery_strings_render_null_as_empty_and_numbers_as_digits() {
        assert_eq!(Value::Null.to_osquery_string(), "");
        assert_eq!(Value::from(42u32).to_osquery_string(), "42");
        assert_eq!(Value::from("x").to_osquery_string(), "x");
    }

    #[test]
    fn unsigned_values_past_i64_saturate() {
        assert_eq!(Value::from(u64::MAX), Value::Integer(i64::MAX));
    }

    #[test]
    fn text_constraints_read_as_integers() {
        assert_eq!(Value::from(" 7").as_integer(), Some(7));
        assert_eq!(Value::from("x").as_integer(), None);
    }
}
