//! What a backend hands on: a typed launch. Health defaults, `check`'s bind
//! conflicts and the Celery integration read its fields; nothing downstream
//! parses argv again.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A process's command line and what the rest of prodserver must know
/// about it. Built once per process with `{instance}` left in place;
/// [`Launch::for_instance`] gives the copy instance `n` runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Launch {
    pub argv: Vec<String>,
    /// Variables the backend (and the Celery integration) add to the
    /// child's environment.
    pub env: BTreeMap<String, String>,
    /// Every address the server binds, in the order it binds them; the
    /// first is the one its default readiness probe uses. Empty for
    /// programs that are not servers, or whose address prodserver cannot
    /// know (then `readiness` says why).
    pub listen: Vec<Listen>,
    pub readiness: DefaultReadiness,
    /// Set when the Celery integration is loaded into this launch.
    pub celery: Option<CeleryIntegration>,
}

/// One address a server binds, as written (`{instance}` may remain until
/// [`Launch::for_instance`]); wildcards are mapped to loopback only where
/// they are probed or compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp {
        host: String,
        port: String,
        /// The server speaks TLS there (its default probe is a connect).
        tls: bool,
    },
    /// A unix socket path, relative to the working directory unless
    /// absolute.
    Unix(String),
}

/// What readiness means for a process without a `health` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DefaultReadiness {
    /// Ready once spawned; nothing worth saying about it.
    #[default]
    AtSpawn,
    /// A web server: ready once its first [`Listen`] answers (any HTTP
    /// answer; a TCP connect under TLS).
    Serving,
    /// A web server prodserver cannot probe by default (a unix socket, an
    /// inherited fd, a config file it cannot read): ready once spawned,
    /// and `why` is worth a log line.
    Unprobeable { why: String },
    /// A web server that cannot be probed from outside (`why`), whose
    /// readiness is `READY=1` from prodserver's gunicorn integration once a
    /// worker has loaded the app (`gunicorn::` module).
    AppLoaded { why: String },
    /// A web server that cannot be probed from outside (`why`): ready at
    /// the first line of its own output matching `pattern` (each spawn has
    /// its own pipes, so a line of another generation never counts).
    OutputLine { pattern: String, why: String },
    /// A Celery worker with the integration: `READY=1` from `worker_ready`,
    /// `WATCHDOG=1` while its event loop runs.
    CeleryWorker,
    /// A Celery beat with the integration: ready once spawned, `WATCHDOG=1`
    /// while beat ticks.
    CeleryBeat,
    /// A Celery process with `celery_integration = false`: nothing reports.
    CeleryWithoutIntegration,
}

/// What the Celery integration added to a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeleryIntegration {
    /// The folder holding the module, first on the child's `PYTHONPATH`;
    /// `start` writes the module there before spawning.
    pub module_dir: PathBuf,
}

impl Launch {
    /// A launch that is ready once spawned and binds nothing prodserver
    /// knows of.
    pub fn at_spawn(argv: Vec<String>) -> Launch {
        Launch {
            argv,
            ..Launch::default()
        }
    }

    /// This launch as instance `n` runs it: the literal `{instance}` in
    /// argv, env values and addresses becomes `n`.
    pub fn for_instance(&self, n: u32) -> Launch {
        let n = n.to_string();
        let x = |text: &str| text.replace(INSTANCE, &n);
        Launch {
            argv: self.argv.iter().map(|a| x(a)).collect(),
            env: self.env.iter().map(|(k, v)| (k.clone(), x(v))).collect(),
            listen: self
                .listen
                .iter()
                .map(|l| match l {
                    Listen::Tcp { host, port, tls } => Listen::Tcp {
                        host: x(host),
                        port: x(port),
                        tls: *tls,
                    },
                    Listen::Unix(path) => Listen::Unix(x(path)),
                })
                .collect(),
            readiness: match &self.readiness {
                DefaultReadiness::Unprobeable { why } => {
                    DefaultReadiness::Unprobeable { why: x(why) }
                }
                DefaultReadiness::AppLoaded { why } => DefaultReadiness::AppLoaded { why: x(why) },
                DefaultReadiness::OutputLine { pattern, why } => DefaultReadiness::OutputLine {
                    pattern: pattern.clone(),
                    why: x(why),
                },
                other => other.clone(),
            },
            celery: self.celery.clone(),
        }
    }
}

const INSTANCE: &str = "{instance}";

impl Listen {
    /// The address as two binds of it would clash: `HOST:PORT` with a
    /// wildcard on loopback (`0.0.0.0` → `127.0.0.1`, `::` → `[::1]`), or
    /// `unix:PATH`. `None` for a port that is not a number in 1..=65535.
    pub fn key(&self, cwd: &std::path::Path) -> Option<String> {
        match self {
            Listen::Unix(path) => Some(format!("unix:{}", cwd.join(path).display())),
            Listen::Tcp { host, port, .. } => {
                let port: u16 = port.trim().parse().ok().filter(|p| *p != 0)?;
                let host = host.trim().trim_start_matches('[').trim_end_matches(']');
                let host = match host.parse::<std::net::IpAddr>() {
                    _ if host.is_empty() => "127.0.0.1".to_owned(),
                    Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_owned(),
                    Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
                    Ok(ip) => ip.to_string(),
                    Err(_) => host.to_owned(),
                };
                Some(format!("{host}:{port}"))
            }
        }
    }
}

/// gunicorn's and waitress's `HOST:PORT` forms: `HOST`, `HOST:PORT`,
/// `[V6]:PORT`, `:PORT`, `tcp://...` (`default_port` when none is given).
pub(super) fn host_port(bind: &str, default_port: &str, tls: bool) -> Listen {
    let bind = bind.strip_prefix("tcp://").unwrap_or(bind);
    let (host, port) = if let Some(rest) = bind.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').unwrap_or(default_port)),
            None => (bind, default_port),
        }
    } else {
        match bind.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            Some(_) => (bind, default_port),
            None => (bind, default_port),
        }
    };
    Listen::Tcp {
        host: host.to_owned(),
        port: port.to_owned(),
        tls,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::plan::BackendKind::*;

    fn tcp(host: &str, port: &str, tls: bool) -> Listen {
        Listen::Tcp {
            host: host.into(),
            port: port.into(),
            tls,
        }
    }

    #[test]
    fn gunicorn_listens_where_it_binds() {
        let l = In::new()
            .app("a:b")
            .arg(
                "bind",
                list(vec![s("0.0.0.0:9000"), s("unix:/run/web.sock")]),
            )
            .launch(Gunicorn);
        assert_eq!(
            l.listen,
            [
                tcp("0.0.0.0", "9000", false),
                Listen::Unix("/run/web.sock".into())
            ]
        );
        assert_eq!(l.readiness, DefaultReadiness::Serving);
        let l = In::new().app("a:b").launch(Gunicorn);
        assert_eq!(l.listen, [tcp("127.0.0.1", "8000", false)]);
        let l = In::new().app("a:b").env("PORT", "5000").launch(Gunicorn);
        assert_eq!(l.listen, [tcp("0.0.0.0", "5000", false)]);
        let l = In::new()
            .app("a:b")
            .env(
                "GUNICORN_CMD_ARGS",
                "--workers 3 --bind [::]:6000 --certfile=c",
            )
            .launch(Gunicorn);
        assert_eq!(l.listen, [tcp("::", "6000", true)]);
        let l = In::new().app("a:b").arg("b", "unix:/x").launch(Gunicorn);
        assert_eq!(
            l.readiness,
            DefaultReadiness::AppLoaded {
                why: "gunicorn binds a unix socket (unix:/x)".into()
            }
        );
        let l = In::new()
            .app("a:b")
            .file("/srv/shop/gunicorn.conf.py")
            .launch(Gunicorn);
        assert!(l.listen.is_empty());
        assert!(
            matches!(&l.readiness, DefaultReadiness::AppLoaded { why } if why.contains("/srv/shop/gunicorn.conf.py")),
            "{:?}",
            l.readiness
        );
    }

    #[test]
    fn asgi_servers_listen_on_host_and_port() {
        let l = In::new()
            .app("m:app")
            .arg("host", "0.0.0.0")
            .arg("port", 8080)
            .launch(Uvicorn);
        assert_eq!(l.listen, [tcp("0.0.0.0", "8080", false)]);
        assert_eq!(l.readiness, DefaultReadiness::Serving);
        let l = In::new()
            .app("m:app")
            .env("UVICORN_PORT", "9001")
            .launch(Uvicorn);
        assert_eq!(l.listen, [tcp("127.0.0.1", "9001", false)]);
        let l = In::new()
            .app("m:app")
            .arg("uds", "/run/u.sock")
            .launch(Uvicorn);
        assert_eq!(l.listen, [Listen::Unix("/run/u.sock".into())]);
        assert!(matches!(l.readiness, DefaultReadiness::OutputLine { .. }));
        let l = In::new()
            .app("proj.asgi:application")
            .env("GRANIAN_HOST", "127.0.0.2")
            .launch(Granian);
        assert_eq!(l.listen, [tcp("127.0.0.2", "8000", false)]);
        let l = In::new().app("m:app").arg("p", 9000).launch(Daphne);
        assert_eq!(l.listen, [tcp("127.0.0.1", "9000", false)]);
        assert_eq!(l.readiness, DefaultReadiness::AtSpawn);
        let l = In::new().app("m:app").launch(Waitress);
        assert_eq!(l.listen, [tcp("0.0.0.0", "8080", false)]);
    }

    #[test]
    fn non_servers_listen_nowhere_and_are_ready_at_spawn() {
        let l = In::new().command(&["sleep", "1"]).launch(Command);
        assert_eq!(l.listen, []);
        assert_eq!(l.readiness, DefaultReadiness::AtSpawn);
        assert_eq!(l.celery, None);
    }

    #[test]
    fn the_celery_integration_is_in_the_typed_launch() {
        let l = In::new()
            .app("shop")
            .arg("I", "shop.tasks")
            .celery_integration()
            .launch(CeleryWorker);
        assert_eq!(l.readiness, DefaultReadiness::CeleryWorker);
        assert!(l
            .argv
            .contains(&"--include=shop.tasks,prodserver_celery".to_owned()));
        let dir = crate::celery::module_dir(std::path::Path::new("/run/user/1000/prodserver"));
        assert_eq!(
            l.celery,
            Some(CeleryIntegration {
                module_dir: dir.clone()
            })
        );
        assert_eq!(l.env["PYTHONPATH"], dir.to_string_lossy());

        let l = In::new()
            .app("shop.celery.app")
            .env("PYTHONPATH", "/srv")
            .celery_integration()
            .launch(CeleryBeat);
        assert_eq!(l.argv, v(&["celery", "-A", "prodserver_celery", "beat"]));
        assert_eq!(l.env["PRODSERVER_CELERY_APP"], "shop.celery.app");
        assert_eq!(l.env["PYTHONPATH"], format!("{}:/srv", dir.display()));
        assert_eq!(l.readiness, DefaultReadiness::CeleryBeat);

        let l = In::new().app("shop").launch(CeleryWorker);
        assert_eq!(l.readiness, DefaultReadiness::CeleryWithoutIntegration);
        assert_eq!(l.celery, None);
        assert!(!l.argv.iter().any(|a| a.contains("prodserver_celery")));
    }

    #[test]
    fn instances_expand_in_addresses_and_keys_map_wildcards_to_loopback() {
        let l = In::new()
            .app("a:b")
            .arg("bind", "0.0.0.0:80{instance}")
            .launch(Gunicorn)
            .for_instance(3);
        assert_eq!(l.listen, [tcp("0.0.0.0", "803", false)]);
        let cwd = std::path::Path::new("/srv");
        assert_eq!(l.listen[0].key(cwd).as_deref(), Some("127.0.0.1:803"));
        assert_eq!(tcp("::", "1", false).key(cwd).as_deref(), Some("[::1]:1"));
        assert_eq!(tcp("h", "x", false).key(cwd), None);
        assert_eq!(
            Listen::Unix("s.sock".into()).key(cwd).as_deref(),
            Some("unix:/srv/s.sock")
        );
    }
}
