//! A database row as a JSON object, losing nothing: integers as numbers,
//! DECIMALs as the server's exact text (never through a float), dates as
//! Magento writes them (`YYYY-MM-DD HH:MM:SS`, UTC), NULL as null.

use mysql_async::{consts::ColumnType, Column, Row, Value as Sql};
use serde_json::{Map, Number, Value};

/// Converts a row read over the text protocol, column by column, in table order.
pub fn row_to_json(row: Row) -> Map<String, Value> {
    convert(row, |col| col.name_str().into_owned())
}

/// A result set's column names, decoded once for all its rows (a Magento
/// order row has over a hundred columns, and a batch hundreds of rows).
#[derive(Debug, Default)]
pub struct Names(Vec<String>);

impl Names {
    pub fn of(row: &Row) -> Self {
        Names(
            row.columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect(),
        )
    }
}

/// [`row_to_json`] for a row of the result set `names` were taken from.
pub fn named_row_to_json(row: Row, names: &Names) -> Map<String, Value> {
    let mut names = names.0.iter();
    convert(row, |_| names.next().cloned().unwrap_or_default())
}

fn convert(row: Row, mut name: impl FnMut(&Column) -> String) -> Map<String, Value> {
    let columns = row.columns();
    let values = row.unwrap();
    let mut out = Map::with_capacity(values.len());
    for (col, value) in columns.iter().zip(values) {
        out.insert(name(col), to_json(col.column_type(), value));
    }
    out
}

/// Reads an integer column of these rows (all of one result set) by name:
/// the column is looked up once, not per row. `None` where the value is not
/// an unsigned integer, or the result has no such column.
pub fn int_column(rows: &[Row], name: &str) -> impl Fn(&Row) -> Option<u64> {
    let index = rows
        .first()
        .and_then(|r| r.columns_ref().iter().position(|c| c.name_str() == name));
    move |row: &Row| match row.as_ref(index?)? {
        Sql::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Sql::Int(i) => u64::try_from(*i).ok(),
        Sql::UInt(u) => Some(*u),
        _ => None,
    }
}

fn to_json(kind: ColumnType, value: Sql) -> Value {
    use ColumnType::*;
    let bytes = match value {
        Sql::NULL => return Value::Null,
        Sql::Bytes(b) => b,
        // The text protocol only yields bytes; these arms cover the binary one.
        Sql::Int(i) => return Value::from(i),
        Sql::UInt(u) => return Value::from(u),
        Sql::Float(f) => return Number::from_f64(f as f64).map_or(Value::Null, Value::Number),
        Sql::Double(f) => return Number::from_f64(f).map_or(Value::Null, Value::Number),
        other => return Value::String(other.as_sql(true).trim_matches('\'').to_owned()),
    };
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        // Legacy rows can hold bytes that are not UTF-8; keep the order, mark
        // the loss with U+FFFD rather than drop or fail it.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match kind {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .unwrap_or(Value::String(text)),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        // DECIMAL, dates, strings, blobs, JSON: exact text.
        _ => Value::String(text),
    }
}
