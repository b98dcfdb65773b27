//! The entry point behind `b2b-convert sim serve`: start a simulator on a fixed port, print
//! where it is and how to sign in, run until told to stop.
//!
//! It must not parse command-line flags (the CLI does, into [`ServeOptions`]) nor print with
//! `println!`: it writes to the writer it is given.

use std::io::Write;
use std::path::PathBuf;

use super::{CountedAt, Error, FaultPlan, Sim, SimCertificate, SimSpec, ThrottleConfig};

/// Options of `b2b-convert sim serve` (already parsed by the CLI).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub users: u64,
    pub seed: u64,
    pub port: u16,
    pub tenant_file: Option<PathBuf>,
    pub faults: FaultPlan,
    pub throttling: bool,
    /// When a request counts against its throttling window.
    pub counted_at: CountedAt,
    /// Where to write the throwaway certificate and private key (PEM) registered on the
    /// generated tenant's app, for rehearsing certificate authentication. `None` = don't.
    pub credentials_dir: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            seed: 1,
            port: 8950,
            tenant_file: None,
            faults: FaultPlan::none(),
            throttling: true,
            counted_at: CountedAt::Arrival,
            credentials_dir: None,
        }
    }
}

/// Runs a simulator until `shutdown` resolves, writing its URLs and credentials to `out`.
///
/// The client secret is printed on purpose: it is a throwaway credential of a local simulator.
pub async fn serve(
    options: ServeOptions,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut spec = match &options.tenant_file {
        Some(path) => SimSpec::from_file(path.clone()),
        None => SimSpec::generated(options.users, options.seed),
    };
    spec.port = options.port;
    spec.faults = options.faults.clone();
    if !options.throttling {
        spec.throttling = ThrottleConfig::disabled();
    }
    spec.throttling.counted_at = options.counted_at;
    let sim = Sim::start(spec).await?;
    let credentials = match &options.credentials_dir {
        Some(dir) => Some(write_credentials(dir)?),
        None => None,
    };
    write_banner(&sim, &options, out).map_err(Error::Output)?;
    if let Some((certificate, key)) = credentials {
        writeln!(
            out,
            "  Certificate: {} (private key {}, throwaway)",
            certificate.display(),
            key.display()
        )
        .map_err(Error::Output)?;
    }
    shutdown.await;
    writeln!(out, "Stopping the simulated tenant.").map_err(Error::Output)?;
    sim.shutdown().await;
    Ok(())
}

/// Writes the shared throwaway certificate and key as PEM files; returns their paths.
fn write_credentials(dir: &std::path::Path) -> Result<(PathBuf, PathBuf), Error> {
    let certificate = SimCertificate::shared()?;
    let certificate_path = dir.join("sim-certificate.pem");
    let key_path = dir.join("sim-private-key.pem");
    let write = |path: &PathBuf, text: &str| {
        std::fs::write(path, text).map_err(|source| Error::WriteCredentials {
            path: path.clone(),
            source,
        })
    };
    write(&certificate_path, &certificate.certificate_pem)?;
    write(&key_path, &certificate.private_key_pem)?;
    Ok((certificate_path, key_path))
}

fn write_banner(sim: &Sim, options: &ServeOptions, out: &mut dyn Write) -> std::io::Result<()> {
    let source = match &options.tenant_file {
        Some(path) => format!("tenant file {}", path.display()),
        None => format!("{} generated users, seed {}", options.users, options.seed),
    };
    writeln!(out, "Simulated Entra tenant ({source}) is listening.")?;
    writeln!(out, "  Graph URL:  {}", sim.graph_url())?;
    writeln!(out, "  Login URL:  {}", sim.login_url())?;
    writeln!(out, "  Token URL:  {}", sim.token_url())?;
    writeln!(out, "  Tenant id:  {}", sim.tenant_id())?;
    for app in sim.apps() {
        writeln!(
            out,
            "  App {:?}: client id {}, roles {}",
            app.display_name,
            app.client_id,
            app.roles.join(" ")
        )?;
        for secret in &app.secrets {
            writeln!(
                out,
                "    client secret (throwaway simulator credential): {secret}"
            )?;
        }
    }
    writeln!(
        out,
        "  Admin API:  {} (counters, requests, faults, redeem, clock)",
        sim.admin_url()
    )?;
    if !options.faults.endpoints.is_empty() {
        writeln!(
            out,
            "  Faults:     {}",
            serde_json::to_string(&options.faults).unwrap_or_default()
        )?;
    }
    if let Some(app) = sim.apps().first() {
        writeln!(
            out,
            "# Point b2b-convert at it (paste, or `eval` the lines below):"
        )?;
        writeln!(out, "export B2BC_GRAPH_URL={}", sim.graph_url())?;
        writeln!(out, "export B2BC_LOGIN_URL={}", sim.login_url())?;
        writeln!(out, "export AZURE_TENANT_ID={}", sim.tenant_id())?;
        writeln!(out, "export AZURE_CLIENT_ID={}", app.client_id)?;
        if let Some(secret) = app.secrets.first() {
            writeln!(out, "export AZURE_CLIENT_SECRET={secret}")?;
        }
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()
}
