//! Arrow batches to the typed JSON rows an answer carries, within the row and size limits.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value as Json;

use crate::DataError;

/// Rows collected so far, refusing to grow past the limits.
#[derive(Debug)]
pub struct Rows {
    rows: Vec<Vec<Json>>,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Rows {
    /// No rows yet; at most `max_rows` rows and about `max_bytes` bytes of JSON.
    pub fn new(max_rows: usize, max_bytes: usize) -> Rows {
        Rows {
            rows: vec![],
            bytes: 0,
            max_rows,
            max_bytes,
        }
    }

    /// Adds a batch's rows, or fails with the limit it would pass.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        if self.rows.len() + batch.num_rows() > self.max_rows {
            return Err(DataError::TooManyRows(self.max_rows));
        }
        let options = FormatOptions::default().with_null("");
        let formatters: Vec<Option<ArrayFormatter<'_>>> = batch
            .columns()
            .iter()
            .map(|c| {
                (!plain(c.data_type()))
                    .then(|| ArrayFormatter::try_new(c.as_ref(), &options).ok())
                    .flatten()
            })
            .collect();
        for i in 0..batch.num_rows() {
            let row: Vec<Json> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| value(c, f.as_ref(), i))
                .collect();
            // Commas, quotes and brackets: close enough to the JSON size to bound it.
            self.bytes += row.iter().map(size).sum::<usize>() + 2;
            if self.bytes > self.max_bytes {
                return Err(DataError::TooLarge(self.max_bytes));
            }
            self.rows.push(row);
        }
        Ok(())
    }

    /// The rows.
    pub fn into_rows(self) -> Vec<Vec<Json>> {
        self.rows
    }
}

/// Types whose values map onto JSON directly.
fn plain(t: &DataType) -> bool {
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Null
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Decimal128(..)
        )
}

/// Row `i` of `array` as JSON: numbers as numbers (NaN and infinities are `null`), text as
/// text, anything else as Arrow displays it (ISO 8601 for dates and times).
fn value(array: &ArrayRef, formatter: Option<&ArrayFormatter<'_>>, i: usize) -> Json {
    if array.is_null(i) {
        return Json::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Json::from(array.as_primitive::<$t>().value(i))
        };
    }
    match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(i)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float16 => float(f64::from(array.as_primitive::<Float16Type>().value(i))),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, scale) => {
            let raw = array
                .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(i);
            float(raw as f64 / 10f64.powi(i32::from(*scale)))
        }
        DataType::Utf8 => Json::from(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Json::from(array.as_string::<i64>().value(i)),
        DataType::Utf8View => Json::from(array.as_string_view().value(i)),
        DataType::Null => Json::Null,
        _ => formatter.map_or(Json::Null, |f| Json::from(f.value(i).to_string())),
    }
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn size(v: &Json) -> usize {
    match v {
        Json::String(s) => s.len() + 3,
        Json::Null => 5,
        _ => 12,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                Arc::new(StringArray::from(vec![Some("eu"), Some("us")])),
                Arc::new(Date32Array::from(vec![Some(0), Some(365)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn values_keep_their_types_and_dates_read_as_iso_text() {
        let mut rows = Rows::new(10, 1 << 20);
        rows.push(&batch()).unwrap();
        assert_eq!(
            rows.into_rows(),
            vec![
                vec![
                    Json::from(1),
                    Json::from(1.5),
                    Json::from("eu"),
                    Json::from("1970-01-01")
                ],
                vec![
                    Json::Null,
                    Json::Null,
                    Json::from("us"),
                    Json::from("1971-01-01")
                ],
            ]
        );
    }

    #[test]
    fn the_row_and_size_limits_are_errors_not_truncations() {
        let mut rows = Rows::new(1, 1 << 20);
        assert_eq!(rows.push(&batch()), Err(DataError::TooManyRows(1)));
        let mut rows = Rows::new(10, 20);
        assert_eq!(rows.push(&batch()), Err(DataError::TooLarge(20)));
    }
}
