//! `--merge auto`: one aggregate query split into what each node runs and what the
//! orchestrator runs over their answers, so that the fleet's answer is the one the query
//! would give over all the nodes' data in one place.
//!
//! ```text
//! SELECT region, avg(amount) AS mean, count(DISTINCT store) AS stores
//! FROM read_parquet('/data/*.parquet') GROUP BY region ORDER BY mean DESC LIMIT 3
//!   node:  SELECT region AS _g0, store AS _d0, sum(amount) AS _p0, count(amount) AS _p1
//!          FROM read_parquet('/data/*.parquet') GROUP BY region, store
//!   merge: SELECT _g0 AS "region", CAST(sum(_p0) AS REAL) / sum(_p1) AS "mean",
//!          count(DISTINCT _d0) AS "stores" FROM results GROUP BY _g0
//!          ORDER BY "mean" DESC LIMIT 3
//! ```
//!
//! Decomposable aggregates only: `sum`, `count`, `min`, `max`, `avg` (shipped as sum and
//! count, never an average of averages) and `count(DISTINCT x)` (the nodes ship their
//! distinct values of `x`); `ORDER BY` and `LIMIT` move to the merge, where they are exact.
//! Anything else (median, percentiles, `HAVING`, window functions) is refused with the
//! reason, since merging it from per-node answers would be wrong. Pure functions, no IO.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, LimitClause, OrderByKind, Query, SelectItem, SetExpr, Statement, Value,
    visit_expressions, visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Why a query with neither aggregates nor GROUP BY is not split.
const NOTHING_TO_MERGE: &str = "it has no aggregate and no GROUP BY; without --merge the rows of every node are shown as they are";

/// The two halves of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// What every node runs.
    pub node_sql: String,
    /// What the orchestrator runs over the table `results` of their answers.
    pub merge_sql: String,
}

/// The word that asks for the split instead of a merge statement.
pub const AUTO: &str = "auto";

/// Splits `sql` into the node and merge halves, or says why it cannot be merged exactly.
pub fn split(sql: &str) -> Result<Split, String> {
    let mut query = parse_query(sql)?;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(refuse(
            "it is not one SELECT (UNION and VALUES are not split)",
        ));
    };
    if select.having.is_some() {
        return Err(refuse(
            "HAVING filters groups after the merge; write the node query and --merge yourself",
        ));
    }
    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        _ => return Err(refuse("GROUP BY ALL and ROLLUP/CUBE are not split")),
    };
    // GROUP BY 1 and GROUP BY alias name projection items.
    let keys: Vec<Expr> = group_by
        .iter()
        .map(|g| resolve_key(g, &select.projection))
        .collect::<Result<_, _>>()?;

    let mut node_items: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(j, k)| format!("{k} AS _g{j}"))
        .collect();
    let mut node_keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
    let mut partials: Vec<String> = Vec::new();
    let mut merge_items: Vec<String> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut aggregated = false;
    let mut distinct_keys = 0;
    let no_aggregate = select.projection.iter().all(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => !has_aggregate(e),
        _ => false,
    });
    if keys.is_empty() && no_aggregate {
        return Err(refuse(NOTHING_TO_MERGE));
    }

    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e.clone(), None),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.value.clone())),
            _ => return Err(refuse("SELECT * cannot be merged; name the columns")),
        };
        let name = alias.unwrap_or_else(|| expr.to_string());
        let original = expr.to_string();
        if let Some(j) = keys.iter().position(|k| k.to_string() == original) {
            merge_items.push(format!("_g{j} AS {}", quoted(&name)));
            names.push((name, original));
            continue;
        }
        if !has_aggregate(&expr) {
            return Err(refuse(&format!(
                "{original} is neither aggregated nor in GROUP BY"
            )));
        }
        aggregated = true;
        let mut merged = expr;
        let mut failure = None;
        let _ = visit_expressions_mut(&mut merged, |e| {
            let Expr::Function(f) = e else {
                return ControlFlow::<()>::Continue(());
            };
            let Some(kind) = aggregate(f) else {
                return ControlFlow::Continue(());
            };
            match rewrite(
                f,
                kind,
                &mut partials,
                &mut node_keys,
                &mut node_items,
                &mut distinct_keys,
            ) {
                Ok(text) => match parse_expr(&text) {
                    Ok(new) => *e = new,
                    Err(err) => failure = Some(err),
                },
                Err(err) => failure = Some(err),
            }
            if failure.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Some(err) = failure {
            return Err(err);
        }
        merge_items.push(format!("{merged} AS {}", quoted(&name)));
        names.push((name, original));
    }
    if !aggregated && keys.is_empty() {
        return Err(refuse(NOTHING_TO_MERGE));
    }
    if select.distinct.is_some() && aggregated {
        return Err(refuse("SELECT DISTINCT with aggregates is not split"));
    }

    let mut merge_sql = format!("SELECT {} FROM results", merge_items.join(", "));
    if !keys.is_empty() {
        let keys: Vec<String> = (0..keys.len()).map(|j| format!("_g{j}")).collect();
        merge_sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
    }
    if let Some(order) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order.kind else {
            return Err(refuse("ORDER BY ALL is not split"));
        };
        let mut items = Vec::new();
        for o in exprs {
            let target = order_target(&o.expr, &names)?;
            items.push(format!("{target}{}", o.options));
        }
        merge_sql.push_str(&format!(" ORDER BY {}", items.join(", ")));
    }
    if let Some(limit) = &query.limit_clause {
        match limit {
            LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } if limit_by.is_empty() => {
                if let Some(l) = limit {
                    merge_sql.push_str(&format!(" LIMIT {l}"));
                }
                if let Some(o) = offset {
                    merge_sql.push_str(&format!(" OFFSET {}", o.value));
                }
            }
            LimitClause::OffsetCommaLimit { offset, limit } => {
                merge_sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
            }
            _ => return Err(refuse("LIMIT BY is not split")),
        }
    }

    node_items.extend(partials);
    let select = match query.body.as_mut() {
        SetExpr::Select(s) => s,
        _ => unreachable!("checked above"),
    };
    select.projection = node_items
        .iter()
        .map(|i| parse_item(i))
        .collect::<Result<_, _>>()?;
    select.group_by = GroupByExpr::Expressions(
        node_keys
            .iter()
            .map(|k| parse_expr(k))
            .collect::<Result<_, _>>()?,
        vec![],
    );
    // Each node sends whole groups; the merge orders and limits them.
    query.order_by = None;
    query.limit_clause = None;
    Ok(Split {
        node_sql: query.to_string(),
        merge_sql,
    })
}

/// Notes on a hand-written merge statement whose answer is not the fleet's exact one.
pub fn approximate(merge_sql: &str) -> Vec<String> {
    let Ok(query) = parse_query(merge_sql) else {
        return vec![];
    };
    let mut notes = Vec::new();
    let _ = visit_expressions(&query, |e| {
        if let Expr::Function(f) = e {
            let name = function_name(f);
            let note = match name.as_str() {
                "avg" | "mean" => Some(
                    "avg() in the merge averages the nodes' answers: unless every node sent raw rows, that is an average of averages, not the fleet's average; ask with --merge auto (avg in the query), or have nodes send sum() and count() and divide in the merge",
                ),
                "median"
                | "percentile_cont"
                | "percentile_disc"
                | "approx_percentile_cont"
                | "approx_median"
                | "stddev"
                | "stddev_pop"
                | "stddev_samp"
                | "variance"
                | "var_pop"
                | "var_samp" => Some(
                    "a median, percentile or deviation over the nodes' answers is approximate unless every node sent raw rows",
                ),
                _ => None,
            };
            if let Some(n) = note
                && !notes.iter().any(|x: &String| x == n)
            {
                notes.push(n.to_string());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    notes
}

/// How an aggregate is shipped and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sum,
    Count,
    Min,
    Max,
    Avg,
    CountDistinct,
}

fn aggregate(f: &Function) -> Option<Result<Kind, String>> {
    let name = function_name(f);
    let distinct = matches!(
        &f.args,
        FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct)
    );
    let kind = match (name.as_str(), distinct) {
        ("sum", false) => Kind::Sum,
        ("count", false) => Kind::Count,
        ("count", true) => Kind::CountDistinct,
        ("min", _) => Kind::Min,
        ("max", _) => Kind::Max,
        ("avg" | "mean", false) => Kind::Avg,
        ("sum" | "avg" | "mean", true) => {
            return Some(Err(refuse(&format!(
                "{f}: a DISTINCT sum or average cannot be merged from per-node answers"
            ))));
        }
        (
            "median"
            | "percentile_cont"
            | "percentile_disc"
            | "approx_percentile_cont"
            | "approx_percentile_cont_with_weight"
            | "approx_median"
            | "approx_distinct"
            | "stddev"
            | "stddev_pop"
            | "stddev_samp"
            | "variance"
            | "var"
            | "var_pop"
            | "var_samp"
            | "string_agg"
            | "group_concat"
            | "array_agg"
            | "first_value"
            | "last_value"
            | "corr"
            | "covar"
            | "covar_pop"
            | "covar_samp"
            | "bit_and"
            | "bit_or"
            | "bool_and"
            | "bool_or"
            | "total",
            _,
        ) => {
            return Some(Err(refuse(&format!(
                "{name}() cannot be merged exactly from per-node answers (sum, count, min, max, avg and count(DISTINCT) can); write the node query and --merge yourself, knowing the merge is approximate"
            ))));
        }
        _ => return None,
    };
    if f.over.is_some() {
        return Some(Err(refuse(&format!("{f}: window functions are not split"))));
    }
    Some(Ok(kind))
}

/// Adds the node-side partial(s) of one aggregate and returns its merge expression.
fn rewrite(
    f: &Function,
    kind: Result<Kind, String>,
    partials: &mut Vec<String>,
    node_keys: &mut Vec<String>,
    node_items: &mut Vec<String>,
    distinct_keys: &mut usize,
) -> Result<String, String> {
    let mut add = |text: String| {
        let name = format!("_p{}", partials.len());
        partials.push(format!("{text} AS {name}"));
        name
    };
    Ok(match kind? {
        Kind::Sum => format!("sum({})", add(f.to_string())),
        Kind::Count => format!("coalesce(sum({}), 0)", add(f.to_string())),
        Kind::Min => format!("min({})", add(f.to_string())),
        Kind::Max => format!("max({})", add(f.to_string())),
        Kind::Avg => {
            let arg = single_arg(f)?;
            let filter = f
                .filter
                .as_ref()
                .map(|c| format!(" FILTER (WHERE {c})"))
                .unwrap_or_default();
            let s = add(format!("sum({arg}){filter}"));
            let c = add(format!("count({arg}){filter}"));
            format!("CAST(sum({s}) AS REAL) / sum({c})")
        }
        Kind::CountDistinct => {
            if f.filter.is_some() {
                return Err(refuse(&format!(
                    "{f}: count(DISTINCT ...) FILTER is not split"
                )));
            }
            let arg = single_arg(f)?;
            let name = format!("_d{distinct_keys}");
            *distinct_keys += 1;
            node_items.push(format!("{arg} AS {name}"));
            node_keys.push(arg);
            format!("count(DISTINCT {name})")
        }
    })
}

fn single_arg(f: &Function) -> Result<String, String> {
    match &f.args {
        FunctionArguments::List(l) => match l.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Ok(e.to_string()),
            _ => Err(refuse(&format!(
                "{f}: give it exactly one column or expression"
            ))),
        },
        _ => Err(refuse(&format!(
            "{f}: give it exactly one column or expression"
        ))),
    }
}

fn has_aggregate(expr: &Expr) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Function(f) if aggregate(f).is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// A GROUP BY entry as the expression it groups by: ordinals and aliases name a projection
/// item.
fn resolve_key(g: &Expr, projection: &[SelectItem]) -> Result<Expr, String> {
    if let Expr::Value(v) = g
        && let Value::Number(n, _) = &v.value
    {
        let i: usize = n
            .parse()
            .map_err(|_| refuse(&format!("GROUP BY {n} is not a column position")))?;
        return match projection.get(i.wrapping_sub(1)) {
            Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => {
                Ok(e.clone())
            }
            _ => Err(refuse(&format!(
                "GROUP BY {n} names no column of the SELECT"
            ))),
        };
    }
    if let Expr::Identifier(id) = g {
        for item in projection {
            if let SelectItem::ExprWithAlias { expr, alias } = item
                && alias.value == id.value
                && !matches!(expr, Expr::Identifier(i) if i.value == id.value)
            {
                return Ok(expr.clone());
            }
        }
    }
    Ok(g.clone())
}

/// An ORDER BY entry as the merge statement writes it: an output name or position.
fn order_target(expr: &Expr, names: &[(String, String)]) -> Result<String, String> {
    if let Expr::Value(v) = expr
        && let Value::Number(n, _) = &v.value
    {
        return Ok(n.clone());
    }
    let text = expr.to_string();
    let bare = match expr {
        Expr::Identifier(id) => id.value.clone(),
        _ => text.clone(),
    };
    names
        .iter()
        .find(|(name, original)| *name == bare || *original == text)
        .map(|(name, _)| quoted(name))
        .ok_or_else(|| {
            refuse(&format!(
                "ORDER BY {text} is not a column of the SELECT; order by a selected column or its alias"
            ))
        })
}

fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .map(|p| p.to_string().trim_matches('"').to_lowercase())
        .unwrap_or_default()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_query(sql: &str) -> Result<Query, String> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| format!("--merge auto: cannot read the query: {e}"))?;
    match statements.as_slice() {
        [Statement::Query(q)] => Ok((**q).clone()),
        [_] => Err(refuse("it is not a SELECT statement")),
        _ => Err(refuse("give exactly one statement")),
    }
}

fn parse_expr(text: &str) -> Result<Expr, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("--merge auto: internal rewrite of {text:?} failed: {e}"))
}

fn parse_item(text: &str) -> Result<SelectItem, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_select_item())
        .map_err(|e| format!("--merge auto: internal rewrite of {text:?} failed: {e}"))
}

fn refuse(why: &str) -> String {
    format!("--merge auto cannot split this query: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counts_and_averages_ship_partials_and_merge_exactly() {
        let s = split(
            "SELECT region, sum(amount) AS total, count(*) AS n, avg(amount) AS mean, max(amount) \
             FROM read_parquet('/data/*.parquet') WHERE amount > 0 GROUP BY region ORDER BY total DESC LIMIT 2",
        )
        .unwrap();
        assert_eq!(
            s.node_sql,
            "SELECT region AS _g0, sum(amount) AS _p0, count(*) AS _p1, sum(amount) AS _p2, \
             count(amount) AS _p3, max(amount) AS _p4 FROM read_parquet('/data/*.parquet') \
             WHERE amount > 0 GROUP BY region"
        );
        assert_eq!(
            s.merge_sql,
            "SELECT _g0 AS \"region\", sum(_p0) AS \"total\", coalesce(sum(_p1), 0) AS \"n\", \
             CAST(sum(_p2) AS REAL) / sum(_p3) AS \"mean\", max(_p4) AS \"max(amount)\" \
             FROM results GROUP BY _g0 ORDER BY \"total\" DESC LIMIT 2"
        );
    }

    #[test]
    fn distinct_counts_ship_the_distinct_values_and_aliases_and_ordinals_name_keys() {
        let s = split(
            "SELECT upper(country) AS c, count(DISTINCT store) AS stores, sum(x) / count(x) AS ratio \
             FROM t GROUP BY 1",
        )
        .unwrap();
        assert_eq!(
            s.node_sql,
            "SELECT upper(country) AS _g0, store AS _d0, sum(x) AS _p0, count(x) AS _p1 \
             FROM t GROUP BY upper(country), store"
        );
        assert_eq!(
            s.merge_sql,
            "SELECT _g0 AS \"c\", count(DISTINCT _d0) AS \"stores\", \
             sum(_p0) / coalesce(sum(_p1), 0) AS \"ratio\" FROM results GROUP BY _g0"
        );
    }

    #[test]
    fn queries_that_cannot_merge_exactly_are_refused_with_the_reason() {
        for (sql, why) in [
            (
                "SELECT region, median(x) FROM t GROUP BY region",
                "median() cannot be merged exactly",
            ),
            (
                "SELECT region, sum(x) FROM t GROUP BY region HAVING sum(x) > 1",
                "HAVING",
            ),
            ("SELECT * FROM t", "SELECT *"),
            ("SELECT a, b FROM t", "no aggregate and no GROUP BY"),
            (
                "SELECT a, sum(x) FROM t",
                "a is neither aggregated nor in GROUP BY",
            ),
            (
                "SELECT a, sum(x) FROM t GROUP BY a ORDER BY b",
                "ORDER BY b is not a column",
            ),
            ("SELECT sum(DISTINCT x) FROM t", "DISTINCT sum"),
            ("DELETE FROM t", "not a SELECT"),
        ] {
            let err = split(sql).unwrap_err();
            assert!(err.contains(why), "{sql}: {err}");
            assert!(err.starts_with("--merge auto"), "{err}");
        }
    }

    #[test]
    fn a_hand_written_average_of_answers_is_flagged_approximate() {
        let notes = approximate("SELECT region, avg(mean) FROM results GROUP BY region");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("average of averages"), "{notes:?}");
        assert!(
            approximate("SELECT region, sum(s) / sum(n) FROM results GROUP BY region").is_empty()
        );
    }
}
