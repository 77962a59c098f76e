//! `api`: the Switchboard server and its operator commands.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use domain::settings::Settings;

// glibc malloc spent ~40% of CPU under load (many small, short-lived allocations across threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
workers::tune_allocator!();

#[derive(Parser)]
#[command(
    name = "api",
    about = "Switchboard: GraphQL back end for AI voice-agent CRMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a tenant and print its ADMIN API key.
    CreateTenant {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "US")]
        region: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long, default_value_t = 10)]
        concurrency_limit: i32,
    },
    /// Print the GraphQL SDL (or write it to a file).
    ExportSchema {
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let cli = Cli::parse();
    if let Some(Command::ExportSchema { out }) = &cli.command {
        let sdl = api::graphql::sdl();
        match out {
            Some(path) => {
                std::fs::write(path, sdl).with_context(|| format!("writing {}", path.display()))?
            }
            None => std::io::stdout().lock().write_all(sdl.as_bytes())?,
        }
        return Ok(());
    }
    let settings = Settings::from_env().context("invalid configuration")?;
    workers::init_tracing(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(settings.bind_addr)
                .await
                .with_context(|| format!("binding {}", settings.bind_addr))?;
            let state = api::server::prepare(settings).await?;
            api::server::serve(state, listener, api::server::shutdown_signal()).await
        }
        Command::Migrate => {
            domain::db::open(&settings.database)
                .await
                .context("opening the database")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateTenant {
            name,
            region,
            timezone,
            concurrency_limit,
        } => {
            let db = domain::db::open(&settings.database)
                .await
                .context("opening the database")?;
            let (tenant, key) = domain::tenancy::create_tenant(
                &db,
                domain::tenancy::NewTenant {
                    name,
                    default_region: region,
                    timezone,
                    concurrency_limit,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(
                std::io::stdout().lock(),
                "tenant {} ({})\napi key: {}",
                tenant.name,
                tenant.id,
                key.key
            )?;
            Ok(())
        }
        Command::ExportSchema { .. } => Ok(()),
    }
}
