//! Which process holds which listening sockets.
//!
//! A process whose plan says [`Holding::Held`] gets its sockets bound the
//! first time one of its instances starts (at start, or when a reload adds
//! it); every later generation, a surge's successor included, receives the
//! same sockets. A socket is closed when a reload removes its process or
//! its address, and when prodserver stops (the engine drops them). A child
//! only ever receives the sockets of its own process and instance.
//!
//! The decisions (which addresses an instance needs, which held sockets a
//! new plan no longer wants) are pure functions; [`Sockets`] applies them.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::Listen;
use crate::os::listen::{bind_listener, Address, Bound, ListenOptions};
use crate::os::PassFds;
use crate::plan::{Holding, Plan, ProcessSpec};

/// The addresses instance `n` of `spec` listens on, in the order its
/// sockets are passed (fd 3, 4, ...); empty unless its sockets are held.
/// A relative unix path is relative to the process's working directory.
pub fn addresses(spec: &ProcessSpec, n: u32) -> Result<Vec<Address>, String> {
    if !matches!(spec.holding, Holding::Held { .. }) {
        return Ok(Vec::new());
    }
    let num = n.to_string();
    spec.listen
        .iter()
        .map(|l| match l {
            Listen::Unix(path) => Ok(Address::Unix(
                spec.cwd.join(path.replace("{instance}", &num)),
            )),
            Listen::Tcp { host, port, .. } => {
                let port = port.replace("{instance}", &num);
                match port.trim().parse::<u16>() {
                    Ok(p) if p != 0 => Ok(Address::Tcp {
                        host: host.replace("{instance}", &num),
                        port: p,
                    }),
                    _ => Err(format!("{port:?} is not a port prodserver can bind")),
                }
            }
        })
        .collect()
}

/// Every `(process, address)` the plan's held processes use, for the
/// instance numbers they run (a surge's successor, under number
/// `instances + 1`, uses the same addresses: see
/// [`ProcessSpec::surges_on_held_socket`]).
pub fn wanted(plan: &Plan) -> BTreeSet<(String, Address)> {
    let mut out = BTreeSet::new();
    for spec in &plan.processes {
        for n in 1..=spec.instances.saturating_add(1) {
            for a in addresses(spec, n).unwrap_or_default() {
                out.insert((spec.name.clone(), a));
            }
        }
    }
    out
}

/// The held sockets `wanted` no longer names: to be closed.
pub fn unwanted<'a>(
    held: impl IntoIterator<Item = &'a (String, Address)>,
    wanted: &BTreeSet<(String, Address)>,
) -> Vec<(String, Address)> {
    held.into_iter()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect()
}

/// The sockets prodserver holds, by process and address.
#[derive(Debug, Default)]
pub struct Sockets {
    held: BTreeMap<(String, Address), Bound>,
}

impl Sockets {
    /// The sockets instance `n` of `spec` receives, bound now if they are
    /// not held yet. `Err` says which address could not be bound.
    pub fn pass_for(&mut self, spec: &ProcessSpec, n: u32) -> Result<PassFds, String> {
        let Holding::Held {
            passing,
            backlog,
            reuse_port,
        } = &spec.holding
        else {
            return Ok(PassFds::default());
        };
        let opts = ListenOptions {
            backlog: *backlog,
            reuse_port: *reuse_port,
        };
        let mut fds = Vec::new();
        for address in addresses(spec, n)? {
            let key = (spec.name.clone(), address);
            let bound = match self.held.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let b = bind_listener(&e.key().1, opts)
                        .map_err(|err| format!("cannot bind {}: {err}", show(&e.key().1)))?;
                    e.insert(b)
                }
            };
            fds.push(bound.raw_fd());
        }
        Ok(PassFds {
            fds,
            listen_env: passing.listen_env(),
        })
    }

    /// Closes the sockets `plan` no longer wants (a reload removed their
    /// process or changed its address); returns what was closed, for the
    /// log. A child still running keeps its own copy until it exits.
    pub fn sweep(&mut self, plan: &Plan) -> Vec<String> {
        let gone = unwanted(self.held.keys(), &wanted(plan));
        gone.into_iter()
            .map(|key| {
                let text = format!("{}: {}", key.0, show(&key.1));
                self.held.remove(&key);
                text
            })
            .collect()
    }

    /// How many sockets are held (for tests and status).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// An address as the log shows it.
pub fn show(a: &Address) -> String {
    match a {
        Address::Tcp { host, port } if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        Address::Tcp { host, port } => format!("{host}:{port}"),
        Address::Unix(path) => format!("unix:{}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::held::Passing;
    use crate::plan::BackendKind;
    use std::path::PathBuf;

    fn held(name: &str, listen: Vec<Listen>, instances: u32) -> ProcessSpec {
        let mut spec = crate::supervisor::order::tests::spec(name, BackendKind::Gunicorn, &[]);
        spec.cwd = PathBuf::from("/srv/shop");
        spec.instances = instances;
        spec.listen = listen;
        spec.holding = Holding::Held {
            passing: Passing::ListenFds,
            backlog: 16,
            reuse_port: false,
        };
        spec
    }

    fn tcp(host: &str, port: &str) -> Listen {
        Listen::Tcp {
            host: host.into(),
            port: port.into(),
            tls: false,
        }
    }

    fn plan(processes: Vec<ProcessSpec>) -> Plan {
        Plan {
            config_path: PathBuf::from("/srv/shop/prodserver.toml"),
            root: PathBuf::from("/srv/shop"),
            name: "shop".into(),
            queues: None,
            processes,
            dev: Default::default(),
            env: Default::default(),
        }
    }

    #[test]
    fn addresses_expand_the_instance_and_resolve_unix_paths() {
        let spec = held(
            "web",
            vec![
                tcp("127.0.0.1", "800{instance}"),
                Listen::Unix("run/web.sock".into()),
            ],
            2,
        );
        assert_eq!(
            addresses(&spec, 2).unwrap(),
            [
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 8002
                },
                Address::Unix(PathBuf::from("/srv/shop/run/web.sock")),
            ]
        );
        let mut own = spec.clone();
        own.holding = Holding::Own { why: "x".into() };
        assert!(addresses(&own, 1).unwrap().is_empty());
        let bad = held("web", vec![tcp("127.0.0.1", "http")], 1);
        assert!(addresses(&bad, 1).is_err());
    }

    #[test]
    fn a_reload_that_removes_a_process_or_address_unwants_its_sockets() {
        let web = held("web", vec![tcp("127.0.0.1", "8000")], 1);
        let api = held("api", vec![tcp("127.0.0.1", "9000")], 1);
        let before = wanted(&plan(vec![web.clone(), api]));
        assert_eq!(before.len(), 2);
        let after = wanted(&plan(vec![web.clone()]));
        let gone = unwanted(before.iter(), &after);
        assert_eq!(
            gone,
            [(
                "api".to_owned(),
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 9000
                }
            )]
        );
        let mut moved = web;
        moved.listen = vec![tcp("127.0.0.1", "8001")];
        let after = wanted(&plan(vec![moved]));
        assert_eq!(unwanted(before.iter(), &after).len(), 2);
    }

    #[test]
    fn a_surge_successor_keeps_a_per_instance_socket_wanted() {
        // instances = 1 plus the successor's number 2.
        let web = held("web", vec![tcp("127.0.0.1", "800{instance}")], 1);
        let w = wanted(&plan(vec![web]));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn sockets_are_bound_once_and_shared_by_every_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = held("web", vec![Listen::Unix("web.sock".into())], 1);
        spec.cwd = dir.path().to_path_buf();
        let mut sockets = Sockets::default();
        let first = sockets.pass_for(&spec, 1).unwrap();
        let second = sockets.pass_for(&spec, 2).unwrap();
        assert_eq!(first, second);
        assert!(first.listen_env);
        assert_eq!(sockets.len(), 1);
        assert!(dir.path().join("web.sock").exists());
        let closed = sockets.sweep(&plan(vec![]));
        assert_eq!(closed.len(), 1, "{closed:?}");
        assert!(sockets.is_empty());
        assert!(!dir.path().join("web.sock").exists());
    }
}
