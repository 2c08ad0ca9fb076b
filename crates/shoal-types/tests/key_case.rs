//! Key case never matters: re-casing every schema key of a valid spec gives the same job.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shoal_types::spec;

/// A spec that uses every part of the job model.
fn full_spec() -> Value {
    json!({
        "Name": "everything", "Namespace": "ns", "Type": "batch", "Priority": 5, "Count": 2,
        "Constraints": [{"Key": "region", "Operator": "in", "Values": ["eu", "us"]}],
        "Meta": {"MixedCase Key": "v"}, "Labels": {"Team": "data"},
        "Tasks": [{
            "Name": "main",
            "Engine": {"Type": "docker", "Params": {"Image": "ubuntu", "Entrypoint": ["/bin/sh"]}},
            "Publisher": {"Type": "s3", "Params": {"Bucket": "b", "Key": "k"}},
            "Env": {"MY_VAR": "x"}, "Meta": {"Inner": "y"},
            "InputSources": [{"Alias": "in", "Target": "/in", "Source": {"Type": "urlDownload", "Params": {"URL": "http://x"}}}],
            "ResultPaths": [{"Name": "out", "Path": "/out"}],
            "Resources": {"CPU": "500m", "Memory": "1Gb", "Disk": "1Gb", "GPU": "0"},
            "Network": {"Type": "Bridge", "Ports": [{"Name": "http", "Static": 8080, "Target": 80, "HostNetwork": "0.0.0.0"}]},
            "Timeouts": {"ExecutionTimeout": 10, "QueueTimeout": 20, "TotalTimeout": 60}
        }]
    })
}

const FREE_FORM: [&str; 4] = ["Meta", "Labels", "Env", "Params"];

/// Re-cases the keys of schema objects, driven by `bits`; free-form maps keep their keys.
fn recase(v: &Value, bits: &[bool], i: &mut usize, free_form: bool) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let key = if free_form {
                    k.clone()
                } else {
                    k.chars()
                        .map(|c| {
                            *i += 1;
                            if bits[*i % bits.len()] {
                                c.to_ascii_uppercase()
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect()
                };
                let child_free = FREE_FORM.iter().any(|f| f.eq_ignore_ascii_case(k));
                out.insert(key, recase(child, bits, i, child_free));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|x| recase(x, bits, i, false)).collect())
        }
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn recasing_keys_gives_the_same_job(bits in prop::collection::vec(any::<bool>(), 1..64)) {
        let original = full_spec();
        let want = spec::parse_job(&original.to_string()).expect("the reference spec is valid");
        let recased = recase(&original, &bits, &mut 0, false);
        let got = spec::parse_job(&recased.to_string());
        prop_assert_eq!(got, Ok(want));
    }
}

#[test]
fn reference_spec_passes_full_validation() {
    let job = spec::parse_job(&full_spec().to_string()).unwrap();
    assert_eq!(spec::validate(&job), []);
    assert_eq!(job.meta.get("MixedCase Key").map(String::as_str), Some("v"));
}
