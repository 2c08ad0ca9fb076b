//! The fast build stays fast: without its default features the `shoal` binary builds no
//! DataFusion (the `analytics` engine is the only thing that needs it).

use std::process::Command;

fn tree(features: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "shoal-cli",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .args(features)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn datafusion_comes_only_with_the_analytics_feature() {
    let lean = tree(&["--no-default-features"]);
    assert!(
        !lean.lines().any(|l| l.starts_with("datafusion")),
        "--no-default-features must not build datafusion"
    );
    let full = tree(&[]);
    assert!(
        full.lines().any(|l| l.starts_with("datafusion ")),
        "the default build has the analytics engine"
    );
}
