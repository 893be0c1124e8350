//! Command-line arguments. Parsing only: `main.rs` dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "prodserver",
    version,
    about = "Run a Django + Celery process set from one prodserver.toml"
)]
pub struct Cli {
    /// The config file (default: $PRODSERVER_CONFIG, else prodserver.toml here or in the nearest parent folder)
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the file and show what would run
    Check {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Run the processes in the foreground until stopped (SIGTERM/SIGINT)
    Start {
        /// Only these processes (plus what they depend on)
        names: Vec<String>,
        /// Never colour the output (NO_COLOR is honoured too)
        #[arg(long)]
        no_color: bool,
        /// Output format of the merged log stream
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Start every text line with its time (RFC 3339, UTC, milliseconds)
        #[arg(long)]
        timestamps: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
