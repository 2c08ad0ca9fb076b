//! `shoal serve`: orchestrator, compute node, or both.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use shoal_api::Security;
use shoal_api::auth::{AnonymousAccess, Audit, Authenticator};
use shoal_compute::{Agent, AllowedPath, ComputeConfig};
use shoal_executors::ExecutorRegistry;
use shoal_orchestrator::{Orchestrator, OrchestratorConfig};
use shoal_store::AuditLog;
use shoal_types::enrolment::{JoinTokenRequest, random_secret, split_join_token};

use super::analytics_flags::{AnalyticsFlags, NodeDataPolicy};
use super::exec_flags::{ExecFlags, NodeExecPolicy};
use crate::config::{self, Config};
use crate::endpoint::{Endpoint, machine_name};

/// What callers without credentials may do (`--allow-anonymous`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anonymous {
    /// Nothing: every call but health and version needs credentials.
    None,
    /// Read jobs, nodes and agent info.
    Read,
    /// Read and change jobs, nodes and agent info (what Bacalhau's Python SDK needs).
    Write,
}

impl Anonymous {
    fn parse_config(s: &str) -> anyhow::Result<Anonymous> {
        <Anonymous as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            anyhow::anyhow!("API.Auth.Anonymous: {s:?} is not one of none, read, write")
        })
    }

    fn access(self) -> AnonymousAccess {
        match self {
            Anonymous::None => AnonymousAccess::None,
            Anonymous::Read => AnonymousAccess::Read,
            Anonymous::Write => AnonymousAccess::Write,
        }
    }
}

/// `serve` arguments.
///
/// Settings can also come from a config file in Bacalhau's shape (`-c FILE`, and
/// `config.yaml` in the data dir): `API.{Host,Port,Auth.Users,Auth.Anonymous}`,
/// `Orchestrator.{Enabled,Auth.Token,NodeManager.ManualApproval}`,
/// `Compute.{Enabled,Orchestrators,Auth.Token,AllowListedLocalPaths}`, `Labels`,
/// `NameProvider`, `DataDir`. Flags win over files.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file in Bacalhau's shape (repeatable; later files override earlier ones).
    #[arg(short = 'c', long = "config")]
    pub config: Vec<PathBuf>,
    /// What API callers without credentials may do. Default: none, except that an
    /// orchestrator with no users configured creates an admin API key and prints where it is.
    #[arg(long, value_enum)]
    pub allow_anonymous: Option<Anonymous>,
    /// Serve the API and the agent link over TLS with an automatic CA kept in the data dir
    /// (`orchestrator/tls/ca.pem` is what clients trust); prints the CA's hash.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls: bool,
    /// Serve over TLS with this PEM certificate chain (with --tls-key). Replacing the files
    /// takes effect for new connections within seconds, without a restart.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Compute node: trust the `wss://` orchestrator whose CA has this hash
    /// (`sha256:<hex>`, printed by `serve --tls`). `--ca-cert FILE` trusts a CA file instead.
    #[arg(long)]
    pub ca_hash: Option<String>,
    /// Extra names (host names or IPs) for the automatic TLS certificate (repeatable).
    #[arg(long = "tls-san", requires = "tls")]
    pub tls_names: Vec<String>,
    /// Run the orchestrator (REST API, scheduler, node manager).
    #[arg(long)]
    pub orchestrator: bool,
    /// Run a compute node.
    #[arg(long)]
    pub compute: bool,
    /// Orchestrator a compute node dials (`ws://host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',')]
    pub orchestrators: Vec<String>,
    /// Node labels `key=value,...` used by job constraints.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Compute node: the join token to enrol with (`<id>.<secret>`, from the join line that
    /// `serve --orchestrator` prints or `shoal node token create`); once enrolled the node's own
    /// key lets it in. Orchestrator: a token shared by every node instead of join tokens (a
    /// shorthand for trusted networks).
    #[arg(long, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Orchestrator: `/metrics` (Prometheus text format) answers without credentials, for a
    /// Prometheus that sends none; otherwise scraping it needs a key with `read:agent`.
    #[arg(long)]
    pub metrics_public: bool,
    /// New nodes wait for `shoal node approve` before they get work.
    #[arg(long)]
    pub require_approval: bool,
    /// Host path jobs may mount with `local` inputs: `/path`, `/path:ro` or `/path:rw` (repeatable).
    #[arg(long = "allow-path")]
    pub allow_paths: Vec<String>,
    /// Compute node: host variables jobs may read with an `env:NAME` value, by name or pattern
    /// (`AWS_*`); repeatable or comma-separated. Others are refused, naming the variable.
    #[arg(long = "env-allow", value_delimiter = ',')]
    pub env_allow: Vec<String>,
    /// Compute node: the folder of secrets that `secret:NAME` env values read (one file per
    /// secret, named NAME) [default: <data-dir>/compute/secrets]. Values never leave the node
    /// and are masked as *** in logs.
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    /// Node id for a compute node (default: generated once and kept in the data dir).
    #[arg(long)]
    pub name: Option<String>,
    /// Compute node: refuse jobs that ask for a network (task `Network.Type` other than
    /// `None`); `job describe` shows the refusal.
    #[arg(long)]
    pub reject_networked_jobs: bool,
    /// Compute node: seconds an execution may spend preparing (pulling its image) before it
    /// fails; separate from the job's run-time limit.
    #[arg(long, default_value_t = shoal_compute::DEFAULT_PREPARE_TIMEOUT.as_secs())]
    pub prepare_timeout: u64,
    /// Orchestrator: a node whose heartbeats stop for this long is marked disconnected
    /// (`30s`, `2m`, ...).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub disconnect_timeout: Duration,
    /// Orchestrator: how long a disconnected node's batch and service work is left alone
    /// before it is placed elsewhere (the node may come back and finish it).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub node_lost_grace: Duration,
    /// Compute node: how often it sends a heartbeat (keep it well under the orchestrator's
    /// --disconnect-timeout).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub heartbeat_interval: Duration,
    /// Compute node: how often a running execution's new log lines go to the orchestrator,
    /// which keeps them for `shoal job logs` when the node is away or gone (16 MiB per
    /// execution); 0s ships a log only when its execution ends.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub log_ship_interval: Duration,
    #[command(flatten)]
    pub exec: ExecFlags,
    #[command(flatten)]
    pub host: HostRootFlags,
    #[command(flatten)]
    pub data: AnalyticsFlags,
}

/// Where a compute node reads its host from for the sample on each heartbeat (fleet metrics,
/// `shoal node top`).
#[derive(Args, Debug, Clone)]
pub struct HostRootFlags {
    /// Compute node: the host's procfs, read for CPU, memory and load. In a container, mount
    /// the host's /proc elsewhere and point this at it.
    #[arg(long, env = "SHOAL_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Compute node: the host's sysfs, read for temperature sensors (thermal zones, hwmon).
    #[arg(long, env = "SHOAL_SYSFS_ROOT", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Compute node: let fleet SQL's log tables (file_lines, nginx_access) read the files
    /// under DIR (repeatable). NAME=DIR shows DIR to queries as NAME, e.g.
    /// /var/log=/srv/node1/log; in devstack, {region} and {node} in DIR become each node's
    /// region label and index. Off by default: no log is readable until the node offers it.
    #[arg(long = "log-allow", value_name = "DIR")]
    pub log_allow: Vec<String>,
}

/// The log directories a compute node offers to the host tables.
#[cfg(feature = "query")]
pub type NodeLogDirs = Vec<shoal_executors::query::LogDir>;
/// Without the `query` engine in the build there is nothing to offer.
#[cfg(not(feature = "query"))]
pub type NodeLogDirs = ();

impl HostRootFlags {
    /// The roots as the agent takes them.
    pub fn roots(&self) -> shoal_compute::HostRoots {
        shoal_compute::HostRoots {
            proc: self.proc_root.clone(),
            sys: self.sysfs_root.clone(),
        }
    }

    /// The `--log-allow` directories, with `{region}` and `{node}` replaced; errors name the
    /// flag and the bad value.
    #[cfg(feature = "query")]
    pub fn log_dirs(&self, region: &str, node: &str) -> anyhow::Result<NodeLogDirs> {
        self.log_allow
            .iter()
            .map(|d| {
                let d = d.replace("{region}", region).replace("{node}", node);
                shoal_executors::query::LogDir::parse(&d)
                    .map_err(|e| anyhow::anyhow!("--log-allow {e}"))
            })
            .collect()
    }

    /// Without the `query` engine in the build, `--log-allow` is an error.
    #[cfg(not(feature = "query"))]
    pub fn log_dirs(&self, _region: &str, _node: &str) -> anyhow::Result<NodeLogDirs> {
        anyhow::ensure!(
            self.log_allow.is_empty(),
            "--log-allow: this shoal was built without the query engine (cargo feature query)"
        );
        Ok(())
    }
}

/// Parses `k=v` labels (keys and values trimmed), naming the bad one.
pub fn parse_labels(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(super::key_value::parse_pairs("label", items)?
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect())
}

/// The engines a compute node offers: noop and wasm always; docker when its daemon answers;
/// query (host tables, reading logs under `logs`) when built in; exec when the node's policy
/// enables it; analytics when it allows some data directory.
pub async fn executors(
    node_id: &str,
    exec: &NodeExecPolicy,
    data: &NodeDataPolicy,
    logs: &NodeLogDirs,
) -> ExecutorRegistry {
    let mut registry = ExecutorRegistry::new();
    registry.register(Arc::new(shoal_executors::noop::NoopExecutor));
    #[cfg(feature = "wasm")]
    match shoal_executors::wasm::WasmExecutor::new() {
        Ok(w) => {
            registry.register(Arc::new(w));
        }
        Err(e) => {
            tracing::warn!(error = %e, "wasm engine unavailable");
            registry.mark_unavailable("wasm", e.to_string());
        }
    }
    #[cfg(feature = "docker")]
    match shoal_executors::docker::DockerExecutor::connect() {
        Ok(d) => {
            let d = d.with_node_id(node_id);
            match d.probe().await {
                Ok(_) => {
                    if let Err(e) = d.cleanup_orphans(&Default::default()).await {
                        tracing::warn!(error = %e, "could not clean up containers left by an earlier run");
                    }
                    registry.register(Arc::new(d));
                }
                Err(e) => {
                    tracing::info!(reason = %e, "docker engine unavailable");
                    registry.mark_unavailable("docker", e);
                }
            }
        }
        Err(e) => {
            tracing::info!(reason = %e, "docker engine unavailable");
            registry.mark_unavailable("docker", e.to_string());
        }
    }
    #[cfg(feature = "query")]
    registry.register(Arc::new(
        shoal_executors::query::QueryExecutor::default().with_log_dirs(logs.clone()),
    ));
    #[cfg(not(feature = "query"))]
    let _ = logs;
    super::exec_flags::install(&mut registry, exec);
    super::analytics_flags::install(&mut registry, data);
    let _ = node_id;
    registry
}

/// Binds the API and starts the orchestrator behind it; returns the handle and the address.
pub async fn start_orchestrator(
    host: &str,
    port: u16,
    cfg: OrchestratorConfig,
    security: Arc<Security>,
    tls: Option<Arc<rustls::ServerConfig>>,
    readiness: shoal_api::Readiness,
) -> anyhow::Result<(Orchestrator, SocketAddr)> {
    let orch = Orchestrator::start(cfg).context("cannot start the orchestrator")?;
    let listener = tokio::net::TcpListener::bind((host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port}; is another shoal already running there? choose another port with --api-port")
    })?;
    let addr = listener.local_addr()?;
    let app = shoal_api::router_with(orch.clone(), security, readiness);
    tokio::spawn(async move {
        let served = match tls {
            Some(tls) => {
                shoal_api::tls::serve_tls(listener, app, tls, std::future::pending()).await
            }
            None => shoal_api::serve(listener, app, std::future::pending()).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok((orch, addr))
}

/// Where the join token printed at start is kept (owner-only).
fn join_token_file(data_dir: &Path) -> PathBuf {
    data_dir.join("orchestrator").join("join-token")
}

/// The join token printed at start: `kept` (the file's content) while it names a token that is
/// still valid, otherwise a new one (24 hours, any number of nodes) written to the file.
async fn printed_join_token(
    orch: &Orchestrator,
    data_dir: &Path,
    kept: &str,
) -> anyhow::Result<String> {
    if let Some((id, _)) = split_join_token(kept) {
        let now = shoal_types::time::to_unix_nanos(std::time::SystemTime::now());
        let valid = orch.join_tokens().await?.iter().any(|t| {
            t.id == id && t.expires_at > now + 3600 * 1_000_000_000 && t.uses_left != Some(0)
        });
        if valid {
            return Ok(kept.to_string());
        }
    }
    let created = orch
        .create_join_token(JoinTokenRequest {
            ttl: "24h".into(),
            uses: None,
            description: "printed by shoal serve at start".into(),
        })
        .await?;
    write_private(&join_token_file(data_dir), &created.secret)?;
    Ok(created.secret)
}

/// A shared token left in the join-token file by an older Shoal (one without a dot): it stays
/// the shared token, so nodes that joined with it keep joining.
fn legacy_shared_token(kept: &str) -> Option<String> {
    (!kept.is_empty() && split_join_token(kept).is_none()).then(|| kept.to_string())
}

/// The orchestrator's admin API key: read from the data dir, or created there (readable by
/// its owner only) on first start. Returns the key, its file, and whether it was just made.
fn admin_key(data_dir: &Path) -> anyhow::Result<(SecretString, PathBuf, bool)> {
    let path = data_dir.join("orchestrator").join("admin-api-key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        return Ok((SecretString::from(k.trim().to_string()), path, false));
    }
    std::fs::create_dir_all(path.parent().expect("has a parent"))
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = format!("shoal-{}", random_secret());
    write_private(&path, &key)?;
    Ok((SecretString::from(key), path, true))
}

/// Writes `text` to a file only its owner can read; readers see the whole file or none
/// (written aside, then renamed into place).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let aside = path.with_extension("new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(&aside)
        .with_context(|| format!("cannot create {}", aside.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", aside.display()))?;
    std::fs::rename(&aside, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The API's security for `serve`: the config's users, the anonymous policy, the admin key
/// when no users are configured, and the audit log in the data dir.
fn security(
    data_dir: &Path,
    cfg: &Config,
    anonymous: Option<Anonymous>,
    public_metrics: bool,
) -> anyhow::Result<Arc<Security>> {
    let anonymous = match (anonymous, cfg.api.auth.anonymous.as_deref()) {
        (Some(a), _) => a,
        (None, Some(s)) => Anonymous::parse_config(s)?,
        (None, None) => Anonymous::None,
    };
    let users = &cfg.api.auth.users;
    let admin = if users.is_empty() {
        let (key, path, created) = admin_key(data_dir)?;
        println!(
            "API access needs a key. {} admin API key is in {} (readable by you only); use it with:",
            if created { "A new" } else { "The" },
            path.display()
        );
        println!("  export SHOAL_API_KEY=$(cat {})", path.display());
        Some(key)
    } else {
        None
    };
    let authenticator = Authenticator::new(users, anonymous.access(), admin.as_ref())?;
    if anonymous != Anonymous::None {
        println!(
            "Anonymous callers may {} (--allow-anonymous).",
            if anonymous == Anonymous::Read {
                "read"
            } else {
                "read and write"
            }
        );
    }
    let audit =
        AuditLog::open(&data_dir.join("orchestrator")).context("cannot open the audit log")?;
    Ok(Arc::new(Security {
        public_metrics,
        authenticator,
        audit: Audit::start(audit),
        sessions: Default::default(),
    }))
}

/// The TLS config `--tls` or `--tls-cert/--tls-key` ask for, and what to tell clients.
fn tls_config(
    data_dir: &Path,
    args: &ServeArgs,
) -> anyhow::Result<Option<(Arc<rustls::ServerConfig>, Option<shoal_api::tls::AutoCa>)>> {
    use shoal_api::tls;
    let mut auto = None;
    let files = if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }
    } else if args.tls {
        let mut names = args.tls_names.clone();
        names.extend(machine_name());
        let ca = tls::auto_ca(&data_dir.join("orchestrator").join("tls"), &names)?;
        println!(
            "TLS with the automatic CA {} ({}); clients trust it with --ca-cert or SHOAL_CA_CERT, e.g. curl --cacert {}",
            ca.ca_cert.display(),
            ca.ca_hash,
            ca.ca_cert.display()
        );
        let files = ca.server.clone();
        auto = Some(ca);
        files
    } else {
        return Ok(None);
    };
    Ok(Some((tls::server_config(files)?, auto)))
}

/// Marks the API alive once the compute nodes started in this process show connected, so
/// that a job sent the moment `alive` answers finds them (hybrid `serve`, devstack). Gives up
/// waiting after 30 s (with a warning): an API that never says alive would be worse than one
/// job that waits for a node.
pub async fn ready_when_joined(
    orch: Orchestrator,
    node_ids: Vec<String>,
    ready: shoal_api::Readiness,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut joined = true;
        for id in &node_ids {
            joined &= orch
                .node(id)
                .await
                .is_ok_and(|n| n.connection == shoal_types::node::ConnectionStatus::Connected);
        }
        if joined {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(nodes = ?node_ids, "local compute nodes have not joined after 30s; the API says alive anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ready.set_ready();
}

/// Runs `shoal serve` until interrupted.
pub async fn run(endpoint: &Endpoint, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = config::load(&endpoint.data_dir(), &args.config)?;
    if let Some(np) = &file.name_provider {
        tracing::info!(name_provider = %np, "NameProvider is read for Bacalhau compatibility; a node's id is kept in its data dir (or set with --name)");
    }
    let data_dir = match (&endpoint.data_dir, &file.data_dir) {
        (None, Some(d)) if std::env::var_os("SHOAL_DIR").is_none() => d.clone(),
        _ => endpoint.data_dir(),
    };
    let compute = args.compute || file.compute.enabled == Some(true);
    // Read before anything starts, so that a bad rule stops the node at once.
    let exec = args.exec.policy()?;
    let mut labels = file.labels.clone();
    labels.extend(parse_labels(&args.labels)?);
    let data = args.data.policy(
        labels.get("region").map_or("", String::as_str),
        args.name.as_deref().unwrap_or(""),
    )?;
    let logs = args.host.log_dirs(
        labels.get("region").map_or("", String::as_str),
        args.name.as_deref().unwrap_or(""),
    )?;
    let run_orchestrator = args.orchestrator || file.orchestrator.enabled == Some(true) || !compute;
    let host = endpoint
        .api_host
        .clone()
        .or_else(|| file.api.host.clone())
        .unwrap_or_else(|| "0.0.0.0".into());
    let port = match (endpoint.api_port, file.api.port) {
        (None, Some(p)) if std::env::var_os("SHOAL_API_PORT").is_none() => p,
        _ => endpoint.port()?,
    };
    let mut dial = args
        .orchestrators
        .first()
        .or(file.compute.orchestrators.first())
        .cloned();
    let mut token = args.token.clone().or_else(|| {
        let from_file = if run_orchestrator {
            &file.orchestrator.auth.token
        } else {
            &file.compute.auth.token
        };
        from_file.as_ref().map(|t| t.expose_secret().to_string())
    });
    let mut local = None;
    let mut local_trust = None;
    if run_orchestrator {
        let security = security(&data_dir, &file, args.allow_anonymous, args.metrics_public)?;
        let mut cfg = OrchestratorConfig::new(&data_dir);
        // A token given (flag, SHOAL_TOKEN, config) is shared by every node; otherwise nodes
        // enrol with join tokens (see `shoal node token`).
        let kept = std::fs::read_to_string(join_token_file(&data_dir))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        cfg.join_token = token.clone().or_else(|| legacy_shared_token(&kept));
        cfg.require_join_token = true;
        cfg.require_approval =
            args.require_approval || file.orchestrator.node_manager.manual_approval == Some(true);
        cfg.disconnect_timeout = args.disconnect_timeout;
        cfg.scheduler.node_lost_grace = i64::try_from(args.node_lost_grace.as_nanos())
            .context("--node-lost-grace is too long")?;
        let tls = tls_config(&data_dir, &args)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let auto_ca = tls.as_ref().and_then(|t| t.1.clone());
        let tls_on = tls.is_some();
        // A hybrid node is alive once its own compute side has joined (see below).
        let ready = if compute {
            shoal_api::Readiness::starting()
        } else {
            shoal_api::Readiness::ready()
        };
        let cfg_shared = cfg.join_token.clone();
        let (orch, addr) =
            start_orchestrator(&host, port, cfg, security, tls.map(|t| t.0), ready.clone()).await?;
        let t = match &cfg_shared {
            Some(shared) => shared.clone(),
            None => printed_join_token(&orch, &data_dir, &kept).await?,
        };
        local = Some((orch, ready));
        println!(
            "Orchestrator listening on {scheme}://{addr} (data dir {})",
            data_dir.display()
        );
        // The address nodes dial: the one listened on, or this machine's name when the
        // orchestrator listens on every interface.
        let reach = if addr.ip().is_unspecified() {
            machine_name().unwrap_or_else(|| "127.0.0.1".into())
        } else {
            addr.ip().to_string()
        };
        println!("To add a compute node, run on it:");
        let ws = if tls_on { "wss" } else { "ws" };
        let pin = auto_ca
            .as_ref()
            .map(|ca| format!(" --ca-hash {}", ca.ca_hash))
            .unwrap_or_default();
        println!(
            "  shoal serve --compute --orchestrators {ws}://{reach}:{} --token {t}{pin}",
            addr.port()
        );
        dial.get_or_insert_with(|| format!("{ws}://127.0.0.1:{}", addr.port()));
        // The local compute side of a hybrid node trusts this orchestrator's own CA.
        if let Some(ca) = &auto_ca {
            local_trust = Some(
                shoal_compute::trust::trust_pinned_ca(&ca.ca_hash).map_err(anyhow::Error::msg)?,
            );
        }
        token = Some(t);
    }
    let _agent = if compute {
        let url = dial.context(
            "a compute node needs --orchestrators ws://HOST:PORT (the orchestrator it dials)",
        )?;
        let mut cfg = ComputeConfig::new(&data_dir, url.clone());
        cfg.token = token;
        cfg.tls = match (&args.ca_hash, &endpoint.ca_cert) {
            (Some(pin), _) => {
                Some(shoal_compute::trust::trust_pinned_ca(pin).map_err(anyhow::Error::msg)?)
            }
            (None, Some(file)) => {
                let pem = std::fs::read(file).with_context(|| {
                    format!("cannot read the CA certificate {}", file.display())
                })?;
                Some(
                    shoal_compute::trust::trust_ca_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                )
            }
            (None, None) => local_trust.take(),
        };
        cfg.labels = labels;
        cfg.node_id = args.name.clone();
        cfg.reject_networked_jobs = args.reject_networked_jobs;
        cfg.prepare_timeout = std::time::Duration::from_secs(args.prepare_timeout);
        anyhow::ensure!(
            !args.heartbeat_interval.is_zero(),
            "--heartbeat-interval must be longer than 0s (for example 5s)"
        );
        cfg.heartbeat_interval = args.heartbeat_interval;
        cfg.log_ship_interval = args.log_ship_interval;
        cfg.host_roots = args.host.roots();
        cfg.allowed_paths = file
            .compute
            .allow_listed_local_paths
            .iter()
            .chain(&args.allow_paths)
            .map(|p| AllowedPath::parse(p))
            .collect();
        cfg.env_allow = file
            .compute
            .env
            .allow_list
            .iter()
            .chain(&args.env_allow)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        cfg.secrets_dir = args.secrets_dir.clone();
        let node_id = args.name.clone().unwrap_or_default();
        let agent = Agent::start(cfg, executors(&node_id, &exec, &data, &logs).await)
            .await
            .context("cannot start the compute agent")?;
        if let Some((orch, ready)) = local.take() {
            tokio::spawn(ready_when_joined(
                orch,
                vec![agent.node_id().to_string()],
                ready,
            ));
        }
        println!(
            "Compute node {} dialling {url} (engines: {})",
            agent.node_id(),
            agent
                .node_info()
                .compute_node_info
                .execution_engines
                .join(", ")
        );
        Some(agent)
    } else {
        None
    };
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
