use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use prodserver::check;
use prodserver::cli::{Cli, Command, LogFormat};
use prodserver::config::{self, LoadOptions};
use prodserver::resolve;
use prodserver::{exit, start};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli) as u8)
}

fn run(cli: Cli) -> i32 {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("error: cannot read the current directory: {e}");
            return exit::INTERNAL;
        }
    };
    let env_config = std::env::var("PRODSERVER_CONFIG").ok();
    let path = match config::locate::locate(cli.config.as_deref(), env_config.as_deref(), &cwd) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG;
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let opts = LoadOptions {
        env: env.clone(),
        runtime_dir: prodserver::os::runtime_dir(),
    };
    let color = std::io::stderr().is_terminal() && env.get("NO_COLOR").is_none_or(|v| v.is_empty());
    match cli.command {
        Command::Check { json } => match resolve::load(&path, &opts) {
            Ok((loaded, resolved)) => {
                let extra = check::environment_warnings(&loaded.plan, &env, &loaded.sources);
                if json {
                    println!("{:#}", check::render_json(&loaded, &resolved, &extra));
                } else {
                    print!("{}", check::render_text(&loaded, &resolved, &extra, color));
                }
                exit::OK
            }
            Err(e) => {
                if json {
                    println!(
                        "{:#}",
                        check::render_errors_json(&e.sources, &e.diagnostics)
                    );
                } else {
                    report(&e, &path, color);
                }
                exit::CONFIG
            }
        },
        Command::Start {
            names,
            no_color,
            log_format,
            timestamps,
        } => {
            let (loaded, resolved) = match resolve::load(&path, &opts) {
                Ok(both) => both,
                Err(e) => {
                    report(&e, &path, color);
                    return exit::CONFIG;
                }
            };
            if !loaded.warnings.is_empty() {
                eprint!("{}", loaded.sources.render(&loaded.warnings, color));
            }
            let settings = start::Settings {
                names,
                no_color,
                json: log_format == LogFormat::Json,
                timestamps,
                env,
                runtime_dir: opts.runtime_dir,
            };
            start::run(loaded.plan, resolved, settings)
        }
    }
}

/// Prints every diagnostic of an invalid file, then a one-line verdict.
fn report(e: &config::LoadError, path: &std::path::Path, color: bool) {
    eprint!("{}", e.sources.render(&e.diagnostics, color));
    let n = e.errors().count();
    eprintln!(
        "\n{}: {n} error{} found; nothing was started",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
}
