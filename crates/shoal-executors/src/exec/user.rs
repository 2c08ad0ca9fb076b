//! Who a command runs as: the user's ids, and whether the agent can become that user.

use std::path::PathBuf;

use nix::unistd::{Uid, User, geteuid};

/// A user looked up on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The user's name, as the policy allowed it.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (`HOME` of the command).
    pub home: PathBuf,
    /// Whether the child must change user: the agent runs as someone else (as root).
    pub switch: bool,
}

/// Looks `name` up in the node's user database and checks that the agent can run commands
/// as that user: only root can run them as another user. Errors say what to change.
pub(crate) fn identity(name: &str) -> Result<Identity, String> {
    let user = match User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(format!(
                "user {name} does not exist on this node; create it or name another with User"
            ));
        }
        Err(e) => return Err(format!("user {name} cannot be looked up on this node: {e}")),
    };
    let me = geteuid();
    let switch = user.uid != me;
    if switch && !me.is_root() {
        return Err(format!(
            "the agent runs as {} (uid {me}), not root, so it cannot run commands as {name} (uid {}); run the agent as root, or set User to {0} and allow it with --exec-user {0} on the node",
            own_name(me),
            user.uid
        ));
    }
    Ok(Identity {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
        switch,
    })
}

fn own_name(uid: Uid) -> String {
    User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_own_user_needs_no_switch() {
        let me = own_name(geteuid());
        let id = identity(&me).unwrap();
        assert!(!id.switch);
        assert_eq!(id.uid, geteuid().as_raw());
    }

    #[test]
    fn a_user_that_does_not_exist_is_named() {
        let err = identity("shoal-no-such-user").unwrap_err();
        assert_eq!(
            err,
            "user shoal-no-such-user does not exist on this node; create it or name another with User"
        );
    }

    #[test]
    fn another_user_needs_the_agent_to_be_root() {
        let Ok(Some(nobody)) = User::from_name("nobody") else {
            eprintln!("skipping: this machine has no user nobody");
            return;
        };
        match (geteuid().is_root(), identity("nobody")) {
            (true, Ok(id)) => {
                assert!(id.switch);
                assert_eq!(id.uid, nobody.uid.as_raw());
            }
            (false, Err(e)) => assert!(e.contains("not root"), "{e}"),
            (root, other) => panic!("root={root}: {other:?}"),
        }
    }
}
