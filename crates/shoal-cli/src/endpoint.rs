//! Where the orchestrator is and where local state lives: flags, then `SHOAL_*`, then
//! `BACALHAU_*` variables (so Bacalhau users' environments work), then defaults.

use std::path::PathBuf;

use clap::Args;
use shoal_client::{Client, Credentials};

/// Global connection and data-dir options.
#[derive(Args, Clone, Debug)]
pub struct Endpoint {
    /// Orchestrator host (env SHOAL_API_HOST, or BACALHAU_API_HOST) [default: 127.0.0.1].
    #[arg(long, global = true)]
    pub api_host: Option<String>,
    /// Orchestrator API port; also the port compute nodes dial (env SHOAL_API_PORT) [default: 1234].
    #[arg(long, global = true)]
    pub api_port: Option<u16>,
    /// Where Shoal keeps its state (env SHOAL_DIR) [default: ~/.shoal].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an `https://` orchestrator, e.g. its automatic
    /// `orchestrator/tls/ca.pem` (env SHOAL_CA_CERT).
    #[arg(long, global = true, env = "SHOAL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// This machine's host name, for addresses other machines should dial.
pub fn machine_name() -> Option<String> {
    hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl Endpoint {
    /// The API host.
    pub fn host(&self) -> String {
        self.api_host
            .clone()
            .or_else(|| env(&["SHOAL_API_HOST", "BACALHAU_API_HOST"]))
            .unwrap_or_else(|| "127.0.0.1".into())
    }

    /// The API port.
    pub fn port(&self) -> anyhow::Result<u16> {
        if let Some(p) = self.api_port {
            return Ok(p);
        }
        match env(&["SHOAL_API_PORT", "BACALHAU_API_PORT"]) {
            Some(p) => p.parse().map_err(|_| {
                anyhow::anyhow!("SHOAL_API_PORT={p:?} is not a port number; use a number like 1234")
            }),
            None => Ok(1234),
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        if let Some(d) = env(&["SHOAL_DIR"]) {
            return d.into();
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        home.join(".shoal")
    }

    /// The agent-link URL a compute node would dial to reach this orchestrator (`ws://h:p`,
    /// this machine's name for a loopback host, or `wss://` for an `https://` host).
    pub fn link_url(&self) -> String {
        let host = self.host();
        if let Some(rest) = host.strip_prefix("https://") {
            return format!("wss://{}", rest.trim_end_matches('/'));
        }
        if let Some(rest) = host.strip_prefix("http://") {
            return format!("ws://{}", rest.trim_end_matches('/'));
        }
        // A loopback address only works on this machine: name the machine instead, as the
        // join line `serve` prints does.
        let host = if matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
            machine_name().unwrap_or(host)
        } else {
            host
        };
        format!("ws://{host}:{}", self.port().unwrap_or(1234))
    }

    /// A client for the orchestrator, with the credentials of the environment
    /// (`SHOAL_API_KEY`/`BACALHAU_API_KEY`, or `BACALHAU_API_USERNAME` and
    /// `BACALHAU_API_PASSWORD`). A host given as a URL (`https://h:p`) is used as is.
    pub fn client(&self) -> anyhow::Result<Client> {
        let credentials = Credentials::from_env().map_err(anyhow::Error::msg)?;
        let host = self.host();
        let client = if host.starts_with("http://") || host.starts_with("https://") {
            Client::from_url(&host)
        } else {
            Client::new(&host, self.port()?)
        };
        let client = client.with_credentials(&credentials);
        match &self.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the CA certificate {}: {e}", path.display())
                })?;
                Ok(client.with_ca_cert(&pem)?)
            }
            None => Ok(client),
        }
    }
}
