//! How a command that can work with a control plane instead of this machine (`train`, `logs`) reaches one: its
//! URL, a token, and the authority to trust. One set of flags, so that they read and behave the same everywhere.

use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct Reach {
    /// A control plane (`https://host:port`) to work with instead of this machine: `train` trains on its agents
    /// (the data uploaded, the winner saved in its store), `logs` reads its events from every machine.
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// With --server: the control plane's token (or STRATUM_TOKEN).
    #[arg(long, env = "STRATUM_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// With an https:// --server: the cluster's certificate authority, the server's `STATE_DIR/tls/ca.pem` (or
    /// STRATUM_CA_CERT); without it, the authority the control plane proves with the token.
    #[arg(long, env = "STRATUM_CA_CERT", value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
}
