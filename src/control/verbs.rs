//! The CLI verbs that talk to a running supervisor: find it from the
//! config file, send one request, print the answer, choose the exit code.

use std::io::Write;
use std::path::Path;

use super::client::{Client, ConnectError};
use super::protocol::{Cmd, Reply};
use crate::error::Error;
use crate::exit;

/// What the operator asked for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Status { json: bool },
    Other(Cmd),
}

/// `web` or `web.2`.
pub fn parse_target(s: &str) -> Result<(String, Option<u32>), String> {
    match s.rsplit_once('.') {
        Some((name, n)) if !name.is_empty() => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Ok((name.to_string(), Some(n))),
            _ => Err(format!(
                "`{s}`: expected NAME or NAME.N with N a number from 1"
            )),
        },
        Some(_) => Err(format!("`{s}`: expected NAME or NAME.N")),
        None if s.is_empty() => Err("expected NAME or NAME.N".into()),
        None => Ok((s.to_string(), None)),
    }
}

/// `worker=4`.
pub fn parse_scale(s: &str) -> Result<(String, u32), String> {
    let Some((name, n)) = s.split_once('=') else {
        return Err(format!("`{s}`: expected NAME=N, e.g. worker=4"));
    };
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("`{s}`: N must be a whole number, e.g. worker=4"))?;
    if name.trim().is_empty() {
        return Err(format!("`{s}`: expected NAME=N, e.g. worker=4"));
    }
    Ok((name.trim().to_string(), n))
}

/// Connects to the supervisor of the project `config` names, sends the
/// verb and prints the answer; the result is the exit code.
pub fn run(config: &Path, runtime_dir: &Path, verb: Verb) -> Result<i32, Error> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| Error::setup(format!("read {}", config.display()), e))?;
    let project = super::project_name(config, &text);
    let paths = super::paths(runtime_dir, &project);
    let mut client = match Client::connect(&paths.socket) {
        Ok(c) => c,
        Err(ConnectError::NotRunning) => {
            eprintln!(
                "error: no prodserver runs for {project} ({})",
                config.display()
            );
            return Ok(exit::NOT_RUNNING);
        }
        Err(ConnectError::Denied(e)) => {
            eprintln!(
                "error: refused: the supervisor of {project} runs as another user ({}: {e}); run this as that user or root",
                paths.socket.display()
            );
            return Ok(exit::NOT_RUNNING);
        }
        Err(ConnectError::Other(e)) => {
            return Err(Error::setup(
                format!("connect to {}", paths.socket.display()),
                e,
            ))
        }
    };
    let talk = |e| Error::setup("talk to the supervisor", e);
    match verb {
        Verb::Status { json } => {
            let reply = client.call(Cmd::Status).map_err(talk)?;
            let Some(instances) = reply.instances.as_ref() else {
                return Ok(refused(&reply));
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply).unwrap_or_default()
                );
            } else {
                print!("{}", super::table::render(instances));
            }
            Ok(if super::table::needs_attention(instances) {
                exit::PROCESS_FAILED
            } else {
                exit::OK
            })
        }
        Verb::Other(cmd @ Cmd::Logs { follow, .. }) => {
            let reply = client.call(cmd).map_err(talk)?;
            let Some(lines) = reply.lines.as_ref() else {
                return Ok(refused(&reply));
            };
            let mut out = std::io::stdout().lock();
            for l in lines {
                // A closed pipe (`| head`) ends the command quietly.
                if writeln!(out, "{} | {}", l.instance, l.line).is_err() {
                    return Ok(exit::OK);
                }
            }
            let _ = out.flush();
            if follow {
                while let Some(reply) = client.next_reply().map_err(talk)? {
                    if let Some(chunk) = reply.log {
                        if out
                            .write_all(chunk.as_bytes())
                            .and_then(|_| out.flush())
                            .is_err()
                        {
                            return Ok(exit::OK);
                        }
                    }
                }
            }
            Ok(exit::OK)
        }
        Verb::Other(cmd) => {
            let reply = client.call(cmd).map_err(talk)?;
            if reply.ok == Some(true) {
                if let Some(m) = &reply.message {
                    println!("{m}");
                }
                Ok(exit::OK)
            } else {
                Ok(refused(&reply))
            }
        }
    }
}

fn refused(reply: &Reply) -> i32 {
    let error = reply
        .error
        .as_deref()
        .unwrap_or("the supervisor gave no reason");
    // A rejected reload's text is the file's rendered diagnostics, which
    // say `error:` themselves.
    if error.starts_with("error") {
        eprintln!("{error}");
    } else {
        eprintln!("error: {error}");
    }
    exit::PROCESS_FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_scales() {
        assert_eq!(parse_target("web"), Ok(("web".into(), None)));
        assert_eq!(parse_target("web.2"), Ok(("web".into(), Some(2))));
        assert!(parse_target("web.0").is_err());
        assert!(parse_target("web.x").is_err());
        assert!(parse_target(".2").is_err());
        assert_eq!(parse_scale("worker=4"), Ok(("worker".into(), 4)));
        assert_eq!(parse_scale("worker=0"), Ok(("worker".into(), 0)));
        assert!(parse_scale("worker").is_err());
        assert!(parse_scale("worker=-1").is_err());
        assert!(parse_scale("=3").is_err());
    }
}
