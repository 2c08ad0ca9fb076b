//! The local account databases, `/etc/passwd` and `/etc/group`, as osquery's Linux tables
//! read them (files only: no NSS, so LDAP or SSSD users are not listed).

use crate::hostfs;

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) gecos: String,
    pub(crate) home: String,
    pub(crate) shell: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) gid: u32,
}

/// Every account in `/etc/passwd`, in file order.
pub(crate) fn accounts() -> Vec<Account> {
    hostfs::read("/etc/passwd")
        .map(|t| parse_passwd(&t))
        .unwrap_or_default()
}

/// Every group in `/etc/group`, in file order.
pub(crate) fn groups() -> Vec<Group> {
    hostfs::read("/etc/group")
        .map(|t| parse_group(&t))
        .unwrap_or_default()
}

fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(Account {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_and_malformed_lines_are_skipped() {
        let a = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nbob:x:1000:1000:Bob,,,:/home/bob:/bin/sh\n",
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].name, "bob");
        assert_eq!(a[1].uid, 1000);
        assert_eq!(a[1].gecos, "Bob,,,");
    }

    #[test]
    fn group_lines_parse() {
        let g = parse_group("root:x:0:\nsudo:x:27:bob\n");
        assert_eq!(
            g,
            vec![
                Group {
                    name: "root".into(),
                    gid: 0
                },
                Group {
                    name: "sudo".into(),
                    gid: 27
                }
            ]
        );
    }
}
