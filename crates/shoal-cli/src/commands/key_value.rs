//! The one `KEY=VALUE` parser of the CLI: `--env`, `--labels`, `-V` template variables,
//! docker labels. Errors name the flag and the bad item.

use std::collections::BTreeMap;

/// Parses `KEY=VALUE` items (empty items are skipped). Keys are trimmed; values are kept as
/// written, since an environment value may mean its spaces. A later item overrides an
/// earlier one with the same key.
pub fn parse_pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_pair(flag, s))
        .collect()
}

/// Parses one `KEY=VALUE` item.
pub fn parse_pair(flag: &str, item: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = item
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{flag} {item:?} must be KEY=VALUE"))?;
    anyhow::ensure!(!k.trim().is_empty(), "{flag} {item:?} has an empty key");
    Ok((k.trim().to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_values_as_written_and_name_the_flag_on_errors() {
        let items = vec!["A=1".to_string(), " B =x=y ".to_string(), String::new()];
        let map = parse_pairs("--env", &items).unwrap();
        assert_eq!(map["A"], "1");
        assert_eq!(
            map["B"], "x=y ",
            "only the first = splits; the value keeps its spaces"
        );
        let e = parse_pairs("--env", &["nokey".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--env \"nokey\" must be KEY=VALUE");
        let e = parse_pairs("--labels", &["=v".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--labels \"=v\" has an empty key");
    }
}
