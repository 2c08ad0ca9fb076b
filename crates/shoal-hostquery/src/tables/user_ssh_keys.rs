//! `user_ssh_keys`: the private keys in each user's `~/.ssh`, and whether each is
//! encrypted. `WHERE uid = N` (or a join on `uid`) reads only those users' directories.
//! Key lengths are not computed (osquery needs OpenSSL for them); they read as NULL.

use base64::Engine;

use crate::table::{Column, HostTable, Row, ScanContext, TableError};
use crate::tables::authorized_keys::users_for;

/// osquery's `user_ssh_keys` table.
pub struct UserSshKeys;

impl HostTable for UserSshKeys {
    const NAME: &'static str = "user_ssh_keys";
    const COLUMNS: &'static [Column] = &[
        Column::bigint("uid").index(),
        Column::text("path").index(),
        Column::integer("encrypted"),
        Column::text("key_type"),
        Column::text("key_group_name"),
        Column::integer("key_length"),
        Column::integer("key_security_bits"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for user in users_for(cx) {
            cx.check_deadline()?;
            let dir = format!("{}/.ssh", user.home.trim_end_matches('/'));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                // Private keys are small; skip anything large without reading it.
                if !std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() < 64 * 1024) {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let Some(key) = describe(&text) else { continue };
                rows.push(vec![
                    user.uid.into(),
                    path.to_string_lossy().into_owned().into(),
                    key.encrypted.into(),
                    key.key_type.into(),
                    "".into(),
                    None::<i64>.into(),
                    (-1i64).into(),
                ]);
            }
        }
        Ok(rows)
    }
}

#[derive(Debug, PartialEq)]
struct PrivateKey {
    encrypted: bool,
    key_type: String,
}

/// Recognises a PEM or OpenSSH private key and reads its type and encryption.
fn describe(text: &str) -> Option<PrivateKey> {
    let begin = text
        .lines()
        .find(|l| l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----"))?;
    let label = begin
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("PRIVATE KEY-----")
        .trim();
    match label {
        "OPENSSH" => {
            let body: String = text
                .lines()
                .skip_while(|l| !l.starts_with("-----BEGIN"))
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect();
            let blob = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .ok()?;
            openssh_key(&blob)
        }
        "ENCRYPTED" => Some(PrivateKey {
            encrypted: true,
            key_type: String::new(),
        }),
        other => Some(PrivateKey {
            encrypted: text.contains("Proc-Type: 4,ENCRYPTED"),
            key_type: match other {
                "RSA" => "rsa",
                "DSA" => "dsa",
                "EC" => "ec",
                _ => "",
            }
            .to_string(),
        }),
    }
}

/// `openssh-key-v1`: magic, then the cipher name (`none` when unencrypted), KDF name and
/// options, key count and the public key, which names the key type.
fn openssh_key(blob: &[u8]) -> Option<PrivateKey> {
    let mut rest = blob.strip_prefix(b"openssh-key-v1\0")?;
    let mut string = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(s)
    };
    let cipher = string()?.to_vec();
    let encrypted = cipher != b"none";
    // The public key blob starts with its type name; find it without a full parser.
    let key_type = [
        ("ssh-ed25519", "ed25519"),
        ("ssh-rsa", "rsa"),
        ("ecdsa-sha2-", "ec"),
        ("ssh-dss", "dsa"),
    ]
    .iter()
    .find(|(needle, _)| blob.windows(needle.len()).any(|w| w == needle.as_bytes()))
    .map(|(_, t)| t.to_string())
    .unwrap_or_default();
    Some(PrivateKey {
        encrypted,
        key_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_keys_report_type_and_encryption() {
        let plain = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            describe(plain),
            Some(PrivateKey {
                encrypted: false,
                key_type: "rsa".into()
            })
        );
        let enc = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nMIIB\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            describe(enc),
            Some(PrivateKey {
                encrypted: true,
                key_type: "ec".into()
            })
        );
        assert_eq!(describe("ssh-ed25519 AAAA me"), None);
    }

    #[test]
    fn openssh_keys_report_cipher_and_type() {
        let mut blob = b"openssh-key-v1\0".to_vec();
        for s in [&b"aes256-ctr"[..], b"bcrypt", b"opts"] {
            blob.extend((s.len() as u32).to_be_bytes());
            blob.extend(s);
        }
        blob.extend(1u32.to_be_bytes());
        let pubkey = [&11u32.to_be_bytes()[..], b"ssh-ed25519"].concat();
        blob.extend((pubkey.len() as u32).to_be_bytes());
        blob.extend(&pubkey);
        assert_eq!(
            openssh_key(&blob),
            Some(PrivateKey {
                encrypted: true,
                key_type: "ed25519".into()
            })
        );
    }
}
