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
        /// Check the variant `prodserver dev` runs (`.dev` overrides applied)
        #[arg(long)]
        dev: bool,
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
    /// For CI: start the processes, wait until all are ready, run COMMAND with their env, stop; exit 0 only if all of that worked
    Smoke {
        /// Only these processes (plus what they depend on)
        names: Vec<String>,
        /// How long the processes have, from the start, to be ready (not the command)
        #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = crate::units::parse_duration)]
        timeout: std::time::Duration,
        /// Write a JUnit XML report here: a testcase per process, one for the command, one for the stop
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Run this once everything is ready (its exit code becomes smoke's when it fails)
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Run like `start` with the `.dev` overrides, restarting a process when a file it watches changes
    Dev {
        /// Only these processes (plus what they depend on)
        names: Vec<String>,
        /// Poll the tree instead of inotify (Docker and WSL mounts)
        #[arg(long)]
        poll: bool,
        /// Never colour the output (NO_COLOR is honoured too)
        #[arg(long)]
        no_color: bool,
        /// Start every text line with its time (RFC 3339, UTC, milliseconds)
        #[arg(long)]
        timestamps: bool,
    },
    /// Show every instance of the running supervisor (exit 1 when something failed or is unhealthy)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Restart a process, rolling across its instances, or one instance (NAME.N); returns once ready
    Restart {
        #[arg(value_name = "NAME[.N]")]
        target: String,
    },
    /// Stop one process; the supervisor and the others keep running
    Stop { name: String },
    /// Start a stopped process again (once what it depends on is ready)
    Up { name: String },
    /// Run N instances of a process, keeping the others' pids
    Scale {
        #[arg(value_name = "NAME=N")]
        spec: String,
    },
    /// Re-read the config file and apply what changed
    Reload,
    /// Recent output of every instance (or of NAME's), then follow with -f
    Logs {
        name: Option<String>,
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// Recent lines per instance
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<usize>,
    },
    /// Write a commented prodserver.toml for the Django project in DIR (default: here)
    Init {
        /// Replace an existing file
        #[arg(long)]
        force: bool,
        /// Write to this file (default: DIR/prodserver.toml)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The Django project's folder, where manage.py is
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write the process set as files other tools run: systemd units, a Procfile
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Print a shell completion script (e.g. `prodserver completions bash > /etc/bash_completion.d/prodserver`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page as roff (`prodserver man | man -l -`), or write every page with -o
    Man {
        /// Write prodserver.1 and a page per subcommand (prodserver-check.1, ...) into this folder
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// Write a prodserver.toml from a Procfile, a supervisord file or django-prodserver's settings
    Import {
        #[command(subcommand)]
        source: ImportSource,
        /// Write the file here (default: print it)
        #[arg(short, long, value_name = "FILE", global = true)]
        output: Option<PathBuf>,
        /// Replace the -o file if it exists
        #[arg(long, global = true)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// A Procfile of honcho or foreman (`name: command` lines)
    Procfile {
        /// The Procfile
        #[arg(value_name = "FILE", default_value = "Procfile")]
        file: PathBuf,
    },
    /// The [program:NAME] sections of a supervisord configuration file
    Supervisord {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// django-prodserver's PRODUCTION_PROCESSES, read by importing the project's settings
    DjangoProdserver {
        /// The settings module (default: $DJANGO_SETTINGS_MODULE, else the one manage.py sets)
        #[arg(long, value_name = "MODULE")]
        settings: Option<String>,
        /// The Django project's folder, where manage.py is (default: here)
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// One unit running `prodserver start` (or, with --per-process, a unit per process and a target)
    Systemd {
        /// A unit for the user's own manager (`systemctl --user`), not a system unit
        #[arg(long)]
        user: bool,
        /// One unit per process plus PROJECT.target: systemd supervises each process, not prodserver
        #[arg(long)]
        per_process: bool,
        /// Write the files into this folder (default: print them)
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// Kubernetes manifests: a Deployment per process, a StatefulSet for beat, a Job per oneshot
    Kubernetes {
        /// The container image every process runs from (the project inside it at --workdir)
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// The config file's folder inside the image: host paths under it move there
        #[arg(long, value_name = "DIR", default_value = "/app")]
        workdir: String,
        /// Where each process's env goes
        #[arg(long, value_enum, default_value_t = EnvAs::Configmap)]
        env_as: EnvAs,
        /// Write one file per process into this folder (default: print them)
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// A Procfile for honcho and foreman
    Procfile {
        /// Write it to this file (default: print it)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvAs {
    Configmap,
    Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
