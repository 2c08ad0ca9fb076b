//! Label selectors: Bacalhau's Kubernetes-style `Constraints` over node labels.

use std::collections::BTreeMap;

use crate::job::LabelSelectorRequirement;

/// Why a set of labels does not satisfy a requirement, in words an operator can act on.
pub fn first_mismatch(
    reqs: &[LabelSelectorRequirement],
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    reqs.iter().find(|r| !matches_one(r, labels)).map(|r| {
        let have = match labels.get(&r.key) {
            Some(v) => format!("node has {}={}", r.key, v),
            None => format!("node has no label {}", r.key),
        };
        format!("constraint {} not met: {}", describe(r), have)
    })
}

/// Whether every requirement holds for the labels.
pub fn matches(reqs: &[LabelSelectorRequirement], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| matches_one(r, labels))
}

/// A requirement in the compact form users write (`region in (eu, us)`).
pub fn describe(r: &LabelSelectorRequirement) -> String {
    let op = r.operator.to_ascii_lowercase();
    match op.as_str() {
        "exists" => r.key.clone(),
        "!" | "doesnotexist" => format!("!{}", r.key),
        "in" | "notin" => format!("{} {} ({})", r.key, op, r.values.join(", ")),
        _ => format!(
            "{}{}{}",
            r.key,
            r.operator,
            r.values.first().map(String::as_str).unwrap_or("")
        ),
    }
}

/// The operators Bacalhau accepts, for error messages.
pub const OPERATORS: &[&str] = &["in", "notin", "exists", "!", "=", "==", "!=", "gt", "lt"];

/// Checks that an operator is known and has the right number of values.
pub fn check(r: &LabelSelectorRequirement) -> Result<(), String> {
    let op = r.operator.to_ascii_lowercase();
    let n = r.values.len();
    let ok = match op.as_str() {
        "in" | "notin" => n >= 1,
        "exists" | "!" | "doesnotexist" => n == 0,
        "=" | "==" | "!=" | "gt" | "lt" => n == 1,
        _ => {
            return Err(format!(
                "unknown operator {:?} (known: {})",
                r.operator,
                OPERATORS.join(", ")
            ));
        }
    };
    if !ok {
        let need = match op.as_str() {
            "in" | "notin" => "at least one value",
            "exists" | "!" | "doesnotexist" => "no values",
            _ => "exactly one value",
        };
        return Err(format!("operator {:?} takes {need}, got {n}", r.operator));
    }
    if matches!(op.as_str(), "gt" | "lt") && r.values[0].parse::<i64>().is_err() {
        return Err(format!(
            "operator {:?} needs an integer value, got {:?}",
            r.operator, r.values[0]
        ));
    }
    Ok(())
}

fn matches_one(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    match r.operator.to_ascii_lowercase().as_str() {
        "in" | "=" | "==" => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
        "notin" | "!=" => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        "exists" => value.is_some(),
        "!" | "doesnotexist" => value.is_none(),
        "gt" | "lt" => {
            let (Some(v), Some(bound)) = (value, r.values.first()) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator.eq_ignore_ascii_case("gt") => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator_behaves_as_kubernetes_selectors() {
        let l = labels(&[("region", "eu"), ("cores", "8")]);
        assert!(matches(&[req("region", "in", &["eu", "us"])], &l));
        assert!(!matches(&[req("region", "notin", &["eu"])], &l));
        assert!(
            matches(&[req("zone", "notin", &["a"])], &l),
            "notin holds when the label is absent"
        );
        assert!(matches(&[req("region", "exists", &[])], &l));
        assert!(matches(&[req("gpu", "!", &[])], &l));
        assert!(matches(&[req("region", "=", &["eu"])], &l));
        assert!(matches(&[req("region", "==", &["eu"])], &l));
        assert!(matches(&[req("region", "!=", &["us"])], &l));
        assert!(matches(&[req("cores", "gt", &["4"])], &l));
        assert!(!matches(&[req("cores", "lt", &["4"])], &l));
    }

    #[test]
    fn mismatch_explains_what_the_node_has() {
        let l = labels(&[("region", "us")]);
        let why = first_mismatch(&[req("region", "==", &["eu"])], &l).unwrap();
        assert_eq!(why, "constraint region==eu not met: node has region=us");
    }

    #[test]
    fn check_rejects_unknown_operators_and_wrong_arity() {
        assert!(
            check(&req("a", "~", &["x"]))
                .unwrap_err()
                .contains("unknown operator")
        );
        assert!(
            check(&req("a", "in", &[]))
                .unwrap_err()
                .contains("at least one value")
        );
        assert!(
            check(&req("a", "gt", &["x"]))
                .unwrap_err()
                .contains("integer")
        );
        assert!(check(&req("a", "exists", &[])).is_ok());
    }
}
