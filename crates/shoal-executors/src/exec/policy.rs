//! The node's exec policy: whether host commands run at all, which ones, as whom, and how
//! much of their output is kept.
//!
//! The node is the authority (the orchestrator's `exec` grant is a second, separate gate).
//! Everything here is a pure function of the policy and the command line; looking users up and
//! finding programs on disk is the caller's.
//!
//! A rule is written as the operator types it on the agent's command line:
//!
//! ```text
//! /usr/bin/systemctl restart [a-z-]+    the program, then a regex over its arguments
//! /usr/bin/uptime                       the program with any arguments
//! ```
//!
//! The regex must match the *whole* argument string, the arguments joined by single spaces
//! (Salt's `args` regexes work the same way): `restart nginx` matches the first rule above,
//! `restart nginx; rm -rf /` does not. The program is compared as an exact path, so a rule for
//! `/usr/bin/systemctl` says nothing about `/tmp/systemctl`.

use std::fmt;

use regex::Regex;

/// The user commands run as when the job names none (uid 65534 on common distributions).
/// Nomad's `raw_exec` ran such tasks as the agent's own user, which was root (nomad#3582).
pub const DEFAULT_USER: &str = "nobody";

/// Output kept per execution when the operator sets no cap: 1 MiB.
pub const DEFAULT_OUTPUT_CAP: u64 = 1 << 20;

/// Exec executions one node runs at once when the operator sets no limit; more wait.
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

/// Why a node does not offer the engine at all, in the words the scheduler shows per node.
pub const EXEC_DISABLED: &str = "exec disabled (start the agent with --enable-exec)";

/// The shell `Shell: true` runs the command with (`/bin/sh -c COMMAND`); it needs a rule.
pub const SHELL: &str = "/bin/sh";

/// The `PATH` commands run with, and where a bare program name is looked up. Fixed by the
/// node, never taken from the job, so that the program the rule check sees is the one that
/// runs.
pub const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One allowlist entry: a program and, optionally, what its arguments must look like.
#[derive(Debug, Clone)]
pub struct ExecRule {
    /// The absolute path of the program.
    pub command: String,
    /// Anchored at both ends; `None` allows any arguments.
    arguments: Option<Regex>,
    /// The rule as written, for summaries and errors.
    text: String,
}

impl ExecRule {
    /// Parses `PATH [REGEX]`: the first word is the program's absolute path, the rest (after
    /// the whitespace that follows it) a regex over the arguments. Errors name the rule.
    pub fn parse(rule: &str) -> Result<ExecRule, String> {
        let text = rule.trim();
        let (command, pattern) = match text.split_once(char::is_whitespace) {
            Some((c, p)) => (c, p.trim()),
            None => (text, ""),
        };
        if !command.starts_with('/') {
            return Err(format!(
                "exec rule {rule:?}: the first word must be the program's absolute path, e.g. /usr/bin/systemctl restart [a-z-]+"
            ));
        }
        let arguments = if pattern.is_empty() {
            None
        } else {
            Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                format!("exec rule {rule:?}: the arguments regex {pattern:?} does not compile: {e}")
            })?)
        };
        Ok(ExecRule {
            command: command.to_string(),
            arguments,
            text: text.to_string(),
        })
    }

    /// Whether the rule allows `argv` (the program's path first).
    pub fn allows(&self, argv: &[String]) -> bool {
        let Some((program, args)) = argv.split_first() else {
            return false;
        };
        if *program != self.command {
            return false;
        }
        match &self.arguments {
            None => true,
            Some(re) => re.is_match(&args.join(" ")),
        }
    }
}

impl fmt::Display for ExecRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a node lets `exec` jobs do. Off by default: [`ExecPolicy::default`] is disabled.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    /// Whether the node runs host commands at all (`--enable-exec`).
    pub enabled: bool,
    /// The allowlist: a command runs only if a rule allows it (`--exec-allow`).
    pub rules: Vec<ExecRule>,
    /// Users commands may run as besides [`default_user`](Self::default_user)
    /// (`--exec-user`).
    pub allowed_users: Vec<String>,
    /// The user a command runs as when the job names none.
    pub default_user: String,
    /// Bytes of output (stdout and stderr together) kept per execution (`--exec-output-cap`);
    /// later lines are dropped and counted.
    pub output_cap: u64,
    /// Exec executions run at once on the node; the others wait for a slot.
    pub max_concurrent: usize,
    /// Where a task's `Files` may be placed (`--exec-write-allow`): absolute prefixes,
    /// compared by whole path parts; none by default.
    pub write_allow: Vec<std::path::PathBuf>,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            enabled: false,
            rules: Vec::new(),
            allowed_users: Vec::new(),
            default_user: DEFAULT_USER.to_string(),
            output_cap: DEFAULT_OUTPUT_CAP,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            write_allow: Vec::new(),
        }
    }
}

impl ExecPolicy {
    /// An enabled policy with these rules (each parsed with [`ExecRule::parse`]) and the
    /// defaults for everything else.
    pub fn enabled_with<S: AsRef<str>>(rules: &[S]) -> Result<ExecPolicy, String> {
        Ok(ExecPolicy {
            enabled: true,
            rules: rules
                .iter()
                .map(|r| ExecRule::parse(r.as_ref()))
                .collect::<Result<_, _>>()?,
            ..ExecPolicy::default()
        })
    }

    /// What the node advertises about its policy: `disabled` or `allowlist N rules`, and the
    /// paths files may be placed under when there are any.
    pub fn summary(&self) -> String {
        let rules = match (self.enabled, self.rules.len()) {
            (false, _) => return "disabled".to_string(),
            (true, 1) => "allowlist 1 rule".to_string(),
            (true, n) => format!("allowlist {n} rules"),
        };
        if self.write_allow.is_empty() {
            return rules;
        }
        let paths: Vec<String> = self
            .write_allow
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!("{rules}, files under {}", paths.join(", "))
    }

    /// Refuses `argv` (the program's absolute path first) unless a rule allows it.
    pub fn check_command(&self, argv: &[String]) -> Result<(), String> {
        if self.rules.iter().any(|r| r.allows(argv)) {
            return Ok(());
        }
        let hint = if argv.first().is_some_and(|p| p == SHELL) {
            format!(" (Shell: true runs {SHELL} -c, which needs a rule for {SHELL})")
        } else {
            String::new()
        };
        Err(format!(
            "not in exec allowlist: {}{hint}; the node allows {}; add a rule with --exec-allow on the node",
            command_line(argv),
            match self.rules.len() {
                0 => "no command".to_string(),
                1 => "1 rule".to_string(),
                n => format!("{n} rules"),
            }
        ))
    }

    /// The user a command runs as: `requested`, or the default user when the job names none.
    /// Either way it must be the default user or one the operator listed, so omitting `User`
    /// never bypasses the list.
    pub fn user_for<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, String> {
        let user = requested.unwrap_or(&self.default_user);
        if user == self.default_user || self.allowed_users.iter().any(|u| u == user) {
            return Ok(user);
        }
        Err(format!(
            "user {user} is not allowed for exec (allowed: {}); allow it with --exec-user {user} on the node",
            self.users().collect::<Vec<_>>().join(", ")
        ))
    }

    /// Every user commands may run as, the default first.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_user.as_str()).chain(
            self.allowed_users
                .iter()
                .map(String::as_str)
                .filter(|u| *u != self.default_user),
        )
    }
}

/// `argv` as a person would type it, quoting what a shell would split or expand.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn policy(rules: &[&str]) -> ExecPolicy {
        ExecPolicy::enabled_with(rules).unwrap()
    }

    #[test]
    fn a_rule_is_a_path_then_an_arguments_regex() {
        let r = ExecRule::parse("/usr/bin/systemctl   restart [a-z-]+ ").unwrap();
        assert_eq!(r.command, "/usr/bin/systemctl");
        assert_eq!(r.to_string(), "/usr/bin/systemctl   restart [a-z-]+");
        assert!(r.allows(&argv(&["/usr/bin/systemctl", "restart", "nginx"])));
        assert!(r.allows(&argv(&["/usr/bin/systemctl", "restart", "php-fpm"])));
    }

    #[test]
    fn the_regex_must_match_the_whole_argument_string() {
        let r = ExecRule::parse("/usr/bin/systemctl restart [a-z-]+").unwrap();
        assert!(!r.allows(&argv(&["/usr/bin/systemctl", "restart"])));
        assert!(!r.allows(&argv(&["/usr/bin/systemctl", "restart", "nginx;", "rm"])));
        assert!(!r.allows(&argv(&["/usr/bin/systemctl", "stop", "nginx"])));
        assert!(!r.allows(&argv(&["/usr/bin/systemctl", "xrestart", "nginx"])));
        // Alternation inside the regex cannot escape the anchors.
        let alt = ExecRule::parse("/bin/echo a|b").unwrap();
        assert!(alt.allows(&argv(&["/bin/echo", "a"])));
        assert!(!alt.allows(&argv(&["/bin/echo", "a", "x"])));
        assert!(!alt.allows(&argv(&["/bin/echo", "x", "b"])));
    }

    #[test]
    fn a_rule_of_just_a_path_allows_any_arguments_of_that_program_only() {
        let r = ExecRule::parse("/usr/bin/uptime").unwrap();
        assert!(r.allows(&argv(&["/usr/bin/uptime"])));
        assert!(r.allows(&argv(&["/usr/bin/uptime", "-p"])));
        assert!(!r.allows(&argv(&["/tmp/uptime"])));
        assert!(!r.allows(&argv(&["/usr/bin/uptime2"])));
    }

    #[test]
    fn a_rule_without_an_absolute_path_is_refused_naming_the_rule() {
        let err = ExecRule::parse("systemctl restart nginx").unwrap_err();
        assert!(
            err.starts_with("exec rule \"systemctl restart nginx\":"),
            "{err}"
        );
        assert!(err.contains("absolute path"), "{err}");
    }

    #[test]
    fn a_rule_whose_regex_does_not_compile_is_refused_naming_the_regex() {
        let err = ExecRule::parse("/bin/echo (unclosed").unwrap_err();
        assert!(err.contains("\"(unclosed\" does not compile"), "{err}");
    }

    #[test]
    fn a_command_no_rule_allows_is_refused_with_its_command_line() {
        let p = policy(&["/usr/bin/systemctl restart [a-z-]+"]);
        assert!(
            p.check_command(&argv(&["/usr/bin/systemctl", "restart", "nginx"]))
                .is_ok()
        );
        let err = p
            .check_command(&argv(&["/bin/rm", "-rf", "/tmp/x"]))
            .unwrap_err();
        assert_eq!(
            err,
            "not in exec allowlist: /bin/rm -rf /tmp/x; the node allows 1 rule; add a rule with --exec-allow on the node"
        );
    }

    #[test]
    fn an_empty_allowlist_allows_nothing() {
        let err = policy(&[])
            .check_command(&argv(&["/bin/true"]))
            .unwrap_err();
        assert!(err.contains("the node allows no command"), "{err}");
    }

    #[test]
    fn a_shell_command_needs_a_rule_for_the_shell() {
        let shell = argv(&[SHELL, "-c", "echo hi"]);
        let err = policy(&["/bin/echo"]).check_command(&shell).unwrap_err();
        assert!(
            err.starts_with("not in exec allowlist: /bin/sh -c 'echo hi' (Shell: true"),
            "{err}"
        );
        assert!(policy(&["/bin/sh"]).check_command(&shell).is_ok());
        assert!(
            policy(&["/bin/sh -c echo .*"])
                .check_command(&shell)
                .is_ok()
        );
    }

    #[test]
    fn an_omitted_user_is_the_default_user() {
        assert_eq!(policy(&[]).user_for(None), Ok("nobody"));
    }

    #[test]
    fn root_is_refused_unless_listed() {
        let mut p = policy(&[]);
        let err = p.user_for(Some("root")).unwrap_err();
        assert_eq!(
            err,
            "user root is not allowed for exec (allowed: nobody); allow it with --exec-user root on the node"
        );
        p.allowed_users.push("root".into());
        assert_eq!(p.user_for(Some("root")), Ok("root"));
        assert_eq!(p.user_for(Some("nobody")), Ok("nobody"));
        assert!(p.user_for(Some("www-data")).is_err());
    }

    #[test]
    fn the_default_user_is_listed_once() {
        let mut p = policy(&[]);
        p.allowed_users = vec!["nobody".into(), "deploy".into()];
        assert_eq!(p.users().collect::<Vec<_>>(), ["nobody", "deploy"]);
    }

    #[test]
    fn the_summary_says_disabled_or_counts_the_rules() {
        assert_eq!(ExecPolicy::default().summary(), "disabled");
        assert_eq!(policy(&["/bin/true"]).summary(), "allowlist 1 rule");
        assert_eq!(
            policy(&["/bin/true", "/bin/false"]).summary(),
            "allowlist 2 rules"
        );
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        assert_eq!(
            command_line(&argv(&["/bin/sh", "-c", "echo 'hi' there", ""])),
            r"/bin/sh -c 'echo '\''hi'\'' there' ''"
        );
    }
}
