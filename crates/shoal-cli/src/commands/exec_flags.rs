//! `--enable-exec`, `--exec-allow`, `--exec-user`, `--exec-output-cap` and
//! `--exec-max-concurrent`: a compute node's policy for host commands, shared by `serve` and
//! `devstack`.
//!
//! ```text
//! shoal serve --compute --enable-exec \
//!   --exec-allow '/usr/bin/systemctl restart [a-z-]+' --exec-allow /usr/bin/uptime \
//!   --exec-user www-data --exec-output-cap 256KiB
//! ```

use clap::Args;
use shoal_executors::ExecutorRegistry;

/// A compute node's exec policy, as flags. Without `--enable-exec` the node offers no `exec`
/// engine, and jobs needing it fail at submission with the reason for each node.
#[derive(Args, Clone, Debug, Default)]
pub struct ExecFlags {
    /// Compute node: run host commands (`exec` jobs, `shoal exec`), only those an
    /// --exec-allow rule allows. Off by default.
    #[arg(long)]
    pub enable_exec: bool,
    /// Compute node: allow a command: its absolute path, then a regex the arguments (joined
    /// by spaces) must match whole, e.g. '/usr/bin/systemctl restart [a-z-]+'; a path alone
    /// allows any arguments (repeatable). `Shell: true` jobs need a rule for /bin/sh.
    #[arg(long = "exec-allow", value_name = "RULE", requires = "enable_exec")]
    pub allow: Vec<String>,
    /// Compute node: a user exec commands may run as, besides the default user nobody
    /// (repeatable). Running as anyone but the agent's own user needs the agent to be root.
    #[arg(long = "exec-user", value_name = "NAME", requires = "enable_exec")]
    pub users: Vec<String>,
    /// Compute node: output kept per exec execution (stdout and stderr together), e.g.
    /// 1MiB; past it lines are dropped and a "[truncated N bytes]" marker ends the output.
    #[arg(long = "exec-output-cap", value_name = "BYTES", default_value = "1MiB")]
    pub output_cap: String,
    /// Compute node: exec commands run at once; more wait for a slot.
    #[arg(long = "exec-max-concurrent", value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,
    /// Compute node: a directory under which exec jobs may place files (`Files` of the exec
    /// engine, e.g. a config before a reload), absolute (repeatable). None by default.
    #[arg(
        long = "exec-write-allow",
        value_name = "DIR",
        requires = "enable_exec"
    )]
    pub write_allow: Vec<std::path::PathBuf>,
}

/// The policy the flags describe.
#[cfg(feature = "exec")]
pub type NodeExecPolicy = shoal_executors::exec::ExecPolicy;
/// Without the `exec` engine in the build there is nothing to configure.
#[cfg(not(feature = "exec"))]
pub type NodeExecPolicy = ();

impl ExecFlags {
    /// Reads the flags into the node's policy; errors name the flag and the bad value.
    #[cfg(feature = "exec")]
    pub fn policy(&self) -> anyhow::Result<NodeExecPolicy> {
        use shoal_executors::exec::{DEFAULT_USER, ExecPolicy, ExecRule};
        let output_cap = shoal_types::resources::parse_byte_size(&self.output_cap)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--exec-output-cap {:?} is not a size in bytes; write it like 1MiB or 65536",
                    self.output_cap
                )
            })?;
        anyhow::ensure!(
            self.max_concurrent > 0,
            "--exec-max-concurrent must be at least 1"
        );
        let rules = self
            .allow
            .iter()
            .map(|r| ExecRule::parse(r).map_err(|e| anyhow::anyhow!("--exec-allow: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(ExecPolicy {
            enabled: self.enable_exec,
            rules,
            allowed_users: self.users.iter().map(|u| u.trim().to_string()).collect(),
            default_user: DEFAULT_USER.to_string(),
            output_cap,
            max_concurrent: self.max_concurrent,
            write_allow: self
                .write_allow
                .iter()
                .map(|p| {
                    anyhow::ensure!(
                        p.is_absolute(),
                        "--exec-write-allow {} must be an absolute directory, e.g. /etc/nginx",
                        p.display()
                    );
                    Ok(p.clone())
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// Without the `exec` engine in the build, `--enable-exec` is an error.
    #[cfg(not(feature = "exec"))]
    pub fn policy(&self) -> anyhow::Result<NodeExecPolicy> {
        anyhow::ensure!(
            !self.enable_exec,
            "--enable-exec: this shoal was built without the exec engine (cargo feature exec)"
        );
        Ok(())
    }
}

/// Offers the `exec` engine under `policy`, or marks it unavailable with the reason
/// the scheduler shows (`exec disabled (start the agent with --enable-exec)`).
pub fn install(registry: &mut ExecutorRegistry, policy: &NodeExecPolicy) {
    #[cfg(feature = "exec")]
    shoal_executors::exec::install(registry, policy.clone());
    #[cfg(not(feature = "exec"))]
    let _ = (registry, policy);
}

#[cfg(all(test, feature = "exec"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        exec: ExecFlags,
    }

    fn policy(args: &[&str]) -> anyhow::Result<NodeExecPolicy> {
        Cli::try_parse_from(["serve"].iter().chain(args))?
            .exec
            .policy()
    }

    #[test]
    fn exec_is_off_unless_enabled() {
        let p = policy(&[]).unwrap();
        assert!(!p.enabled);
        assert_eq!(p.summary(), "disabled");
    }

    #[test]
    fn rules_users_and_limits_are_read() {
        let p = policy(&[
            "--enable-exec",
            "--exec-allow",
            "/usr/bin/systemctl restart [a-z-]+",
            "--exec-allow",
            "/usr/bin/uptime",
            "--exec-user",
            "www-data",
            "--exec-output-cap",
            "64KiB",
        ])
        .unwrap();
        assert!(p.enabled);
        assert_eq!(p.summary(), "allowlist 2 rules");
        assert_eq!(p.users().collect::<Vec<_>>(), ["nobody", "www-data"]);
        assert_eq!(p.output_cap, 64 * 1024);
    }

    #[test]
    fn a_rule_without_enable_exec_is_refused() {
        assert!(policy(&["--exec-allow", "/bin/true"]).is_err());
    }

    #[test]
    fn a_bad_rule_is_refused_naming_the_flag() {
        let err = policy(&["--enable-exec", "--exec-allow", "true"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--exec-allow: exec rule \"true\""), "{err}");
    }
}
