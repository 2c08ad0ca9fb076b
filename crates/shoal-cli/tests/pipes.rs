//! The CLI behaves like a Unix tool in a pipeline.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_cli_quietly_instead_of_panicking() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--api-port", "1", "version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal starts");
    // Close the read end at once, as `shoal ... | head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("shoal ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
        "ended by SIGPIPE like other Unix tools (or before writing): {:?} {stderr}",
        out.status
    );
}
