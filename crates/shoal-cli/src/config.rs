//! The node config file, in Bacalhau's shape, so a Bacalhau config loads unchanged.
//!
//! Layers, lowest first: built-in defaults < `config.yaml` in the data dir < each `-c FILE`
//! (in order) < `SHOAL_*` environment variables (read by the flags that have one) < flags.
//! Files are merged key by key, so a later file overrides only what it names. Keys are
//! Bacalhau's PascalCase names; an unknown key is an error that names it and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::SecretString;
use serde::Deserialize;
use shoal_api::auth::UserConfig;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Config {
    /// Bacalhau's node-naming scheme; accepted, not used: Shoal keeps a node's id in its data
    /// dir (or takes `--name`).
    #[serde(default)]
    pub name_provider: Option<String>,
    /// Where state lives (`--data-dir` wins).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The REST API.
    #[serde(default, rename = "API")]
    pub api: ApiSection,
    /// The orchestrator role.
    #[serde(default)]
    pub orchestrator: OrchestratorSection,
    /// The compute role.
    #[serde(default)]
    pub compute: ComputeSection,
    /// Node labels (`--labels` adds to and overrides them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `API:`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ApiSection {
    /// Address to listen on (`--api-host` wins).
    #[serde(default)]
    pub host: Option<String>,
    /// Port to listen on (`--api-port` wins).
    #[serde(default)]
    pub port: Option<u16>,
    /// Who may call the API.
    #[serde(default)]
    pub auth: ApiAuthSection,
}

/// `API.Auth:`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ApiAuthSection {
    /// Bacalhau's users: username and password, or an API key, with capabilities.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Shoal's: what callers without credentials may do: `none` (default), `read`, `write`
    /// (`--allow-anonymous` wins).
    #[serde(default)]
    pub anonymous: Option<String>,
}

/// `Orchestrator:`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OrchestratorSection {
    /// Run the orchestrator role.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The token compute nodes present (`--token` wins).
    #[serde(default)]
    pub auth: TokenSection,
    /// Node admission.
    #[serde(default)]
    pub node_manager: NodeManagerSection,
}

/// `Orchestrator.NodeManager:`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NodeManagerSection {
    /// New nodes wait for `shoal node approve` (`--require-approval`).
    #[serde(default)]
    pub manual_approval: Option<bool>,
}

/// `Compute:`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ComputeSection {
    /// Run the compute role.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Orchestrators to dial (`--orchestrators` wins).
    #[serde(default)]
    pub orchestrators: Vec<String>,
    /// The token presented to the orchestrator (`--token` wins).
    #[serde(default)]
    pub auth: TokenSection,
    /// Host paths `local` inputs may mount, as `--allow-path` takes them.
    #[serde(default)]
    pub allow_listed_local_paths: Vec<String>,
    /// `Compute.Env`: host variables jobs may read with `env:NAME` (Bacalhau's key).
    #[serde(default)]
    pub env: EnvSection,
}

/// `Compute.Env:`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EnvSection {
    /// Host variable names or patterns (`AWS_*`), as `--env-allow` takes them.
    #[serde(default)]
    pub allow_list: Vec<String>,
}

/// `*.Auth:` of the node link.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TokenSection {
    /// The shared join token.
    #[serde(default)]
    pub token: Option<SecretString>,
}

/// Merges `over` into `base`, key by key: mappings merge, anything else is replaced.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

fn read_layer(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("config file {} is not valid YAML", path.display()))?;
    anyhow::ensure!(
        value.is_object(),
        "config file {} must be a mapping of keys (API:, Orchestrator:, ...)",
        path.display()
    );
    // Each file is checked alone, so an unknown key is blamed on the file that has it.
    serde_json::from_value::<Config>(value.clone()).map_err(|e| {
        anyhow::anyhow!(
            "config file {}: {e}; see `shoal serve --help` for the keys Shoal reads",
            path.display()
        )
    })?;
    Ok(value)
}

/// Loads `data_dir/config.yaml` (when it exists), then each of `files` over it.
pub fn load(data_dir: &Path, files: &[PathBuf]) -> anyhow::Result<Config> {
    let mut merged = serde_json::Value::Object(Default::default());
    let default_file = data_dir.join("config.yaml");
    let layers = default_file
        .exists()
        .then_some(default_file)
        .into_iter()
        .chain(files.iter().cloned());
    for path in layers {
        merge(&mut merged, read_layer(&path)?);
    }
    serde_json::from_value(merged).context("the merged config files do not fit together")
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_later_file_overrides_only_the_keys_it_names() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "config.yaml",
            "API:\n  Port: 1111\n  Host: 10.0.0.1\nLabels:\n  region: eu\n",
        );
        let extra = write(dir.path(), "extra.yaml", "API:\n  Port: 2222\n");
        let cfg = load(dir.path(), &[extra]).unwrap();
        assert_eq!(cfg.api.port, Some(2222));
        assert_eq!(cfg.api.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(cfg.labels["region"], "eu");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.yaml", "API:\n  Prot: 1234\n");
        let e = format!("{:#}", load(dir.path(), &[bad]).unwrap_err());
        assert!(e.contains("Prot"), "{e}");
        assert!(e.contains("bad.yaml"), "{e}");
    }

    #[test]
    fn bacalhaus_auth_config_shape_loads_with_its_secrets_kept_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "b.yaml",
            "NameProvider: \"uuid\"\nAPI:\n  Port: 1234\n  Auth:\n    Users:\n      - Alias: a\n        Username: auser\n        Password: apassword12\n        Capabilities:\n          - Actions: [\"read:job\"]\n      - APIKey: ABCDEFGHIJKLMNOPQRSTUVWXYZ\n        Capabilities:\n          - Actions: [\"read:job\"]\nOrchestrator:\n  Enabled: true\n  Auth:\n    Token: \"the_node_token\"\n",
        );
        let cfg = load(dir.path(), &[f]).unwrap();
        assert_eq!(cfg.api.auth.users.len(), 2);
        assert_eq!(cfg.orchestrator.enabled, Some(true));
        let token = cfg.orchestrator.auth.token.as_ref().unwrap();
        assert_eq!(token.expose_secret(), "the_node_token");
        let debug = format!("{cfg:?}");
        for secret in [
            "apassword12",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "the_node_token",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
