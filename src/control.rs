//! The control plane's vocabulary: what may be asked of a running daemon (reload the config,
//! set a pool's members, renew ACME certificates), what a change did, and why one was refused. `app` carries the
//! operations out; `admin` exposes them over HTTP; both import them from here, so neither
//! imports the other for them.

use crate::acme::AcmeError;
use crate::backend::BackendSpec;
use crate::config::ConfigError;
use crate::server::ServerError;
use crate::tls::TlsError;
use std::future::Future;
use std::pin::Pin;

/// What the admin API (and anything else outside the daemon's own loop) may ask of it.
pub trait Control: Send + Sync {
    /// Reloads the config file.
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ReloadReport, ControlError>> + Send + '_>>;
    /// Sets a pool's backends (`PUT /pools/{name}/backends`); `None` when unchanged.
    fn push(
        &self,
        pool: &str,
        specs: Vec<BackendSpec>,
    ) -> Result<Option<ReloadReport>, ControlError>;
    /// Asks the ACME task of `listener` (of every ACME listener, with `None`) to order a new
    /// certificate now (`POST /acme/renew`); returns the listeners asked.
    fn renew_certificates(&self, listener: Option<&str>) -> Result<Vec<String>, ControlError>;
}

/// Why a write endpoint's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The reload failed.
    #[error(transparent)]
    Reload(#[from] ReloadError),
    /// The membership push failed.
    #[error(transparent)]
    Members(#[from] MembersError),
    /// A renewal could not be asked for.
    #[error(transparent)]
    Renew(#[from] AcmeError),
}

/// What a successful reload or membership change did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The new generation.
    pub generation: u64,
    /// One line per change, e.g. `pool api: added 10.0.0.7:8080 weight 1`.
    pub changes: Vec<String>,
}

/// Why a reload was refused; the old config keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The daemon was started without a config file (e.g. `portero demo`).
    #[error("no config file to reload (started without --config)")]
    NoConfigFile,
    /// The new file is invalid.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// A new listener could not be bound, or its TLS settings built.
    #[error("{0}")]
    Listener(#[from] ListenerError),
    /// `admin.token_file` could not be read.
    #[error("cannot read admin.token_file: {0}")]
    Token(std::io::Error),
    /// The change needs a restart in this build.
    #[error("{0}; restart portero to apply it")]
    NeedsRestart(String),
}

/// Why a membership update was refused.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    /// No pool of that name in the config.
    #[error("no pool named `{0}`")]
    UnknownPool(String),
    /// The set itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Why listeners could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] ServerError),
    /// A listener's TLS settings could not be built.
    #[error("listener `{0}`: {1}")]
    Tls(String, TlsError),
}
