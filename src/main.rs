use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use prodserver::check;
use prodserver::cli::{Cli, Command};
use prodserver::config::{self, LoadOptions};
use prodserver::exit;

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
        runtime_dir: runtime_dir(&env),
    };
    let color = std::io::stderr().is_terminal() && env.get("NO_COLOR").is_none_or(|v| v.is_empty());
    match cli.command {
        Command::Check { json } => match config::load(&path, &opts) {
            Ok(loaded) => {
                let extra = check::environment_warnings(&loaded.plan, &env, &loaded.sources);
                if json {
                    println!("{:#}", check::render_json(&loaded, &extra));
                } else {
                    print!("{}", check::render_text(&loaded, &extra, color));
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
                    eprint!("{}", e.sources.render(&e.diagnostics, color));
                    let n = e.errors().count();
                    eprintln!(
                        "\n{}: {n} error{} found; nothing was started",
                        path.display(),
                        if n == 1 { "" } else { "s" }
                    );
                }
                exit::CONFIG
            }
        },
        Command::Start { .. } => {
            eprintln!("error: start is being wired up");
            exit::INTERNAL
        }
    }
}

fn runtime_dir(env: &BTreeMap<String, String>) -> std::path::PathBuf {
    match env.get("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::Path::new(dir).join("prodserver"),
        None => std::path::PathBuf::from(format!("/tmp/prodserver-{}", nix::unistd::getuid())),
    }
}
