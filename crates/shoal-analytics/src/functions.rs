//! DuckDB's date-part shorthands (`hour(ts)`, `year(ts)`, ...), so queries written for DuckDB
//! run unchanged: each is `date_part('<part>', ts)` under DuckDB's name, evaluated by
//! DataFusion's own `date_part`, so types, time zones and errors are DataFusion's.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// DuckDB's function names and the `date_part` part each stands for.
const PARTS: &[(&str, &str)] = &[
    ("year", "year"),
    ("quarter", "quarter"),
    ("month", "month"),
    ("week", "week"),
    ("day", "day"),
    ("dayofmonth", "day"),
    ("dayofweek", "dow"),
    ("dayofyear", "doy"),
    ("hour", "hour"),
    ("minute", "minute"),
    ("second", "second"),
];

/// Registers the shorthands on `ctx`.
pub fn register(ctx: &SessionContext) {
    for (name, part) in PARTS {
        ctx.register_udf(ScalarUDF::new_from_impl(DatePart::new(name, part)));
    }
}

/// One shorthand: `name(x)` is `date_part(part, x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePart {
    name: &'static str,
    part: &'static str,
    signature: Signature,
}

impl DatePart {
    fn new(name: &'static str, part: &'static str) -> Self {
        DatePart {
            name,
            part,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Text becomes a timestamp, as in DuckDB's `hour('2026-12-04 10:00:00')`.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View] => {
                Ok(vec![DataType::Timestamp(TimeUnit::Nanosecond, None)])
            }
            [t] => Ok(vec![t.clone()]),
            _ => plan_err!(
                "{}() takes one argument (a timestamp or date), got {}",
                self.name,
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        // date_part's type for every part but epoch and nanosecond.
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = <[ColumnarValue; 1]>::try_from(args.args).or_else(|a| {
            exec_err!(
                "{}() takes one argument (a timestamp or date), got {}",
                self.name,
                a.len()
            )
        })?;
        let mut arg_fields = vec![Arc::new(Field::new("part", DataType::Utf8, false))];
        arg_fields.extend(args.arg_fields);
        datafusion::functions::datetime::date_part().invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.part.to_string()))),
                value,
            ],
            arg_fields,
            number_rows: args.number_rows,
            return_field: args.return_field,
            config_options: args.config_options,
        })
    }
}
