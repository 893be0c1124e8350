use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use prodserver::check;
use prodserver::cli::{Cli, Command, LogFormat};
use prodserver::config::{self, LoadOptions};
use prodserver::control::protocol::Cmd;
use prodserver::control::verbs::{self, Verb};
use prodserver::error::{self, Error};
use prodserver::resolve;
use prodserver::{exit, smoke, start};

/// The one place where errors become output and exit codes; a panic is
/// caught and reported like any other error, never an exit path of its own.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let code = match error::guard(|| run(cli, color)) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.render(color));
            e.exit_code()
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli, color: bool) -> Result<i32, Error> {
    // These write or describe, and read no config file: none is located.
    match cli.command {
        Command::Completions { shell } => {
            print!("{}", prodserver::completions::script(shell));
            Ok(exit::OK)
        }
        Command::Man { output: None } => {
            let page = prodserver::completions::man_page()
                .map_err(|e| Error::setup("render the man page", e))?;
            print!("{page}");
            Ok(exit::OK)
        }
        Command::Man { output: Some(dir) } => {
            prodserver::completions::write_man_pages(&dir)
                .map_err(|e| Error::setup(format!("write man pages into {}", dir.display()), e))?;
            Ok(exit::OK)
        }
        Command::Init { force, output, dir } => {
            if cli.config.is_some() {
                return Err(Error::usage(
                    "init writes a file and reads none: name it with -o FILE, not -c/--config",
                ));
            }
            let env: BTreeMap<String, String> = std::env::vars().collect();
            let opts = prodserver::init::Options { force, output, dir };
            prodserver::init::run(opts, &env, prodserver::os::runtime_dir(), color)
        }
        Command::Import { .. } if cli.config.is_some() => Err(Error::usage(
            "import writes a new file: name it with -o FILE, not -c/--config",
        )),
        Command::Import {
            source,
            output,
            force,
        } => {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::setup("read the current directory", e))?;
            let env: BTreeMap<String, String> = std::env::vars().collect();
            prodserver::import::run(source, output.as_deref(), force, &cwd, &env, color)
        }
        command => run_project(cli.config.as_deref(), command, color),
    }
}

fn run_project(
    config: Option<&std::path::Path>,
    command: Command,
    color: bool,
) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::setup("read the current directory", e))?;
    let env_config = std::env::var("PRODSERVER_CONFIG").ok();
    let path = config::locate::locate(config, env_config.as_deref(), &cwd)
        .map_err(|e| Error::usage(e.to_string()))?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let opts = LoadOptions {
        hold_sockets: true,
        env: env.clone(),
        runtime_dir: prodserver::os::runtime_dir(),
        dev: matches!(
            command,
            Command::Dev { .. } | Command::Check { dev: true, .. }
        ),
    };
    match command {
        Command::Check { json, .. } => match resolve::load(&path, &opts) {
            Ok((loaded, resolved)) => {
                let extra = check::environment_warnings(&loaded.plan, &env, &loaded.sources);
                if json {
                    println!("{:#}", check::render_json(&loaded, &resolved, &extra));
                } else {
                    print!("{}", check::render_text(&loaded, &resolved, &extra, color));
                }
                Ok(exit::OK)
            }
            Err(e) if json => {
                println!(
                    "{:#}",
                    check::render_errors_json(&e.sources, &e.diagnostics)
                );
                Ok(exit::CONFIG)
            }
            Err(e) => Err(Error::config(path, e)),
        },
        Command::Start {
            names,
            no_color,
            log_format,
            timestamps,
        } => {
            let (loaded, resolved) = load_to_run(&path, &opts, color)?;
            let settings = start::Settings {
                names,
                no_color,
                json: log_format == LogFormat::Json,
                timestamps,
                env,
                runtime_dir: opts.runtime_dir,
                dev: None,
            };
            start::run(loaded.plan, resolved, settings)
        }
        Command::Dev {
            names,
            poll,
            no_color,
            timestamps,
        } => {
            let (loaded, resolved) = load_to_run(&path, &opts, color)?;
            let settings = start::Settings {
                names,
                no_color,
                json: false,
                timestamps,
                env,
                runtime_dir: opts.runtime_dir,
                dev: Some(prodserver::dev::Options { poll }),
            };
            start::run(loaded.plan, resolved, settings)
        }
        Command::Smoke {
            names,
            timeout,
            junit,
            command,
        } => {
            let (loaded, resolved) = load_to_run(&path, &opts, color)?;
            let settings = smoke::Settings {
                names,
                timeout,
                junit,
                command,
                env,
                runtime_dir: opts.runtime_dir,
            };
            smoke::run(loaded.plan, resolved, settings)
        }
        Command::Status { json } => verbs::run(&path, &opts.runtime_dir, Verb::Status { json }),
        Command::Restart { target } => {
            let (process, instance) = verbs::parse_target(&target).map_err(Error::usage)?;
            let cmd = Cmd::Restart { process, instance };
            verbs::run(&path, &opts.runtime_dir, Verb::Other(cmd))
        }
        Command::Stop { name } => {
            let cmd = Cmd::Stop { process: name };
            verbs::run(&path, &opts.runtime_dir, Verb::Other(cmd))
        }
        Command::Up { name } => {
            let cmd = Cmd::Up { process: name };
            verbs::run(&path, &opts.runtime_dir, Verb::Other(cmd))
        }
        Command::Scale { spec } => {
            let (process, instances) = verbs::parse_scale(&spec).map_err(Error::usage)?;
            let cmd = Cmd::Scale { process, instances };
            verbs::run(&path, &opts.runtime_dir, Verb::Other(cmd))
        }
        Command::Reload => verbs::run(&path, &opts.runtime_dir, Verb::Other(Cmd::Reload)),
        Command::Logs {
            name,
            follow,
            lines,
        } => {
            let cmd = Cmd::Logs {
                process: name,
                lines,
                follow,
            };
            verbs::run(&path, &opts.runtime_dir, Verb::Other(cmd))
        }
        Command::Export { target } => prodserver::export::run(target, &path, &opts, color),
        // `run` answers these before a config file is looked for.
        Command::Completions { .. }
        | Command::Man { .. }
        | Command::Init { .. }
        | Command::Import { .. } => Err(Error::usage(
            "this command is answered before a config file is looked for",
        )),
    }
}

/// The file loaded for a run (`start`, `dev`, `smoke`), its warnings shown.
fn load_to_run(
    path: &std::path::Path,
    opts: &LoadOptions,
    color: bool,
) -> Result<
    (
        prodserver::config::Loaded,
        prodserver::resolve::ResolvedPlan,
    ),
    Error,
> {
    let (loaded, resolved) = resolve::load(path, opts).map_err(|e| Error::config(path, e))?;
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.sources.render(&loaded.warnings, color));
    }
    Ok((loaded, resolved))
}
