//! Start and stop order, from `depends_on` and backend kinds.
//!
//! Theory of operation: `depends_on` forms a directed acyclic graph (the
//! config validator rejects cycles with [`crate::graph::find_cycle`]). Everything here is a
//! longest-path ranking over that graph:
//!
//! - Start: `rank(p) = 0` without dependencies, else `1 + max rank(deps)`.
//!   Processes of one rank form a wave, listed in declaration order. Waves
//!   only say what *may* be tried together; whether a process may actually
//!   start is the dependency gate's call (`gate.rs`: started / healthy /
//!   completed).
//! - Stop: the mirror image. `dep_rank(p) = 0` if nothing depends on p, else
//!   `1 + max dep_rank(dependents)`, so a process stops only after everything
//!   that depends on it has stopped. Between processes with equal `dep_rank`
//!   the backend's `default_stop_tier` decides (beat and web first, workers
//!   last, so workers drain what was produced). The key `(dep_rank, tier)` can
//!   never contradict a dependency: a dependency's `dep_rank` is strictly
//!   greater than its dependent's, whatever the tiers.
//!
//! A `Plan` is validated, but these functions are total anyway: dependency
//! ids out of range are ignored and processes on a cycle (if one slipped
//! through) go into one last wave, so nothing is silently dropped and
//! nothing panics.

use std::collections::{BTreeMap, VecDeque};

use crate::plan::{Plan, ProcessId};

/// `deps[p]`: the processes `p` depends on.
fn dependency_lists(plan: &Plan) -> Vec<Vec<usize>> {
    plan.processes
        .iter()
        .map(|p| p.depends_on.iter().map(|d| d.process).collect())
        .collect()
}

/// The reverse graph: `out[p]` lists the processes that depend on `p`.
fn reverse(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut rev = vec![Vec::new(); n];
    for (v, list) in adj.iter().enumerate() {
        for &u in list {
            if u < n {
                rev[u].push(v);
            }
        }
    }
    rev
}

/// Longest-path rank of every node, where `after[v]` lists the nodes `v` must
/// come after: 0 for a node with no predecessor, else 1 + the max over them.
/// `None` for nodes on (or behind) a cycle. Kahn's algorithm: O(V + E).
fn ranks(after: &[Vec<usize>]) -> Vec<Option<usize>> {
    let n = after.len();
    let successors = reverse(after);
    // Duplicate edges count twice here and are released twice below, so
    // they are harmless.
    let mut waiting: Vec<usize> = after
        .iter()
        .map(|l| l.iter().filter(|&&u| u < n).count())
        .collect();
    let mut rank: Vec<Option<usize>> = vec![None; n];
    let mut best = vec![0usize; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&v| waiting[v] == 0).collect();
    for &v in &queue {
        rank[v] = Some(0);
    }
    while let Some(u) = queue.pop_front() {
        let r = rank[u].unwrap_or(0);
        for &v in &successors[u] {
            best[v] = best[v].max(r + 1);
            waiting[v] -= 1;
            if waiting[v] == 0 {
                rank[v] = Some(best[v]);
                queue.push_back(v);
            }
        }
    }
    rank
}

/// Groups ids by key, ascending; ids keep declaration order within a group.
/// Unranked ids (cycles) come last, together.
fn group<K: Ord>(keys: impl Iterator<Item = Option<K>>) -> Vec<Vec<ProcessId>> {
    let mut waves: BTreeMap<K, Vec<ProcessId>> = BTreeMap::new();
    let mut unranked = Vec::new();
    for (id, key) in keys.enumerate() {
        match key {
            Some(k) => waves.entry(k).or_default().push(id),
            None => unranked.push(id),
        }
    }
    let mut out: Vec<Vec<ProcessId>> = waves.into_values().collect();
    if !unranked.is_empty() {
        out.push(unranked);
    }
    out
}

/// Start waves: wave `k` holds the processes whose longest dependency chain
/// has length `k`, in declaration order.
pub fn start_ranks(plan: &Plan) -> Vec<Vec<ProcessId>> {
    group(ranks(&dependency_lists(plan)).into_iter())
}

/// Stop waves, first to stop first. Processes in one wave stop in parallel;
/// the next wave starts stopping once the previous one has fully exited.
pub fn stop_waves(plan: &Plan) -> Vec<Vec<ProcessId>> {
    let dependents = reverse(&dependency_lists(plan));
    let dep_rank = ranks(&dependents);
    group(
        dep_rank
            .into_iter()
            .zip(&plan.processes)
            .map(|(r, p)| r.map(|r| (r, p.backend.default_stop_tier()))),
    )
}

/// The named processes plus everything they depend on, transitively, in
/// declaration order (`prodserver start web` also starts `migrate`).
pub fn closure(plan: &Plan, names: &[ProcessId]) -> Vec<ProcessId> {
    let n = plan.processes.len();
    let mut seen = vec![false; n];
    let mut stack: Vec<ProcessId> = names.iter().copied().filter(|&p| p < n).collect();
    while let Some(p) = stack.pop() {
        if std::mem::replace(&mut seen[p], true) {
            continue;
        }
        stack.extend(
            plan.processes[p]
                .depends_on
                .iter()
                .map(|d| d.process)
                .filter(|&d| d < n && !seen[d]),
        );
    }
    (0..n).filter(|&p| seen[p]).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::*;
    use std::path::PathBuf;
    use std::time::Duration;

    pub(crate) fn spec(name: &str, backend: BackendKind, deps: &[usize]) -> ProcessSpec {
        ProcessSpec {
            name: name.to_string(),
            backend,
            argv: vec!["true".into()],
            env: Default::default(),
            cwd: PathBuf::from("/"),
            oneshot: false,
            instances: 1,
            singleton: false,
            restart: RestartPolicy::Always,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                reset: Duration::from_secs(60),
            },
            max_restarts: 0,
            restart_window: Duration::from_secs(60),
            stop_signal: 15,
            stop_timeout: Duration::from_secs(10),
            escalate_signal: None,
            kill_timeout: Duration::from_secs(10),
            critical: false,
            depends_on: deps
                .iter()
                .map(|&process| Dependency {
                    process,
                    condition: Condition::Started,
                })
                .collect(),
            user: None,
            group: None,
            health: None,
            limits: Limits {
                max_memory_per_child: None,
                max_tasks_per_child: None,
                memory_metric: MemoryMetric::Rss,
                memory_interval: Duration::from_secs(5),
                memory_samples: 3,
                memory_scope: MemoryScope::Instance,
                server_recycling: None,
            },
            rollout: crate::plan::RolloutMode::Replace,
            celery: None,
            watch: vec![],
            dev: Default::default(),
            listen: vec![],
            readiness: Default::default(),
            holding: Default::default(),
        }
    }

    pub(crate) fn plan(processes: Vec<ProcessSpec>) -> Plan {
        Plan {
            config_path: PathBuf::from("/p/prodserver.toml"),
            root: PathBuf::from("/p"),
            name: "p".into(),
            queues: None,
            processes,
            dev: Default::default(),
        }
    }

    use BackendKind::{
        CeleryBeat as Beat, CeleryWorker as Worker, Command as Cmd, Gunicorn as Web,
    };

    #[test]
    fn no_deps_beat_and_web_before_commands_before_workers() {
        let p = plan(vec![
            spec("worker", Worker, &[]),
            spec("web", Web, &[]),
            spec("tool", Cmd, &[]),
            spec("beat", Beat, &[]),
            spec("q2", BackendKind::DjangoQ2, &[]),
        ]);
        assert_eq!(stop_waves(&p), vec![vec![1, 3], vec![2], vec![0, 4]]);
        assert_eq!(start_ranks(&p), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn chain_stops_in_reverse() {
        // web -> api -> migrate (web depends on api, api on migrate)
        let p = plan(vec![
            spec("migrate", Cmd, &[]),
            spec("api", Web, &[0]),
            spec("web", Web, &[1]),
        ]);
        assert_eq!(start_ranks(&p), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(stop_waves(&p), vec![vec![2], vec![1], vec![0]]);
    }

    #[test]
    fn dependency_beats_tier() {
        // A web server that depends on a worker (odd, but legal): the
        // dependency must win over "workers stop last" -- and a beat that a
        // worker depends on must stop after the worker.
        let p = plan(vec![
            spec("worker", Worker, &[]),
            spec("web", Web, &[0]),
            spec("beat", Beat, &[]),
            spec("worker2", Worker, &[2]),
        ]);
        // dep_rank/tier: web (0,0), worker2 (0,2), beat (1,0), worker (1,2)
        assert_eq!(stop_waves(&p), vec![vec![1], vec![3], vec![2], vec![0]]);
        // check: no process stops before one that depends on it
        let waves = stop_waves(&p);
        let pos = |id| waves.iter().position(|w| w.contains(&id)).unwrap();
        for (id, s) in p.processes.iter().enumerate() {
            for d in &s.depends_on {
                assert!(pos(id) < pos(d.process), "{} before its dependency", s.name);
            }
        }
    }

    #[test]
    fn diamond() {
        //   web  worker
        //    \   /  \
        //    cache  beat?  -> both depend on db
        let p = plan(vec![
            spec("db", Cmd, &[]),         // 0
            spec("cache", Cmd, &[0]),     // 1
            spec("web", Web, &[1, 0]),    // 2
            spec("worker", Worker, &[1]), // 3
            spec("beat", Beat, &[0]),     // 4
        ]);
        assert_eq!(start_ranks(&p), vec![vec![0], vec![1, 4], vec![2, 3]]);
        // dep_rank: web 0, worker 0, beat 0, cache 1, db 2
        assert_eq!(stop_waves(&p), vec![vec![2, 4], vec![3], vec![1], vec![0]]);
    }

    #[test]
    fn mixed_independent_and_dependent() {
        let p = plan(vec![
            spec("migrate", Cmd, &[]),                // 0
            spec("web", Web, &[0]),                   // 1
            spec("worker", Worker, &[0]),             // 2
            spec("beat", Beat, &[]),                  // 3
            spec("flower", BackendKind::Flower, &[]), // 4
        ]);
        assert_eq!(start_ranks(&p), vec![vec![0, 3, 4], vec![1, 2]]);
        assert_eq!(stop_waves(&p), vec![vec![1, 3, 4], vec![2], vec![0]]);
    }

    #[test]
    fn empty_plan() {
        let p = plan(vec![]);
        assert!(start_ranks(&p).is_empty());
        assert!(stop_waves(&p).is_empty());
        assert!(closure(&p, &[0]).is_empty());
    }

    #[test]
    fn cycles_and_bad_ids_do_not_panic_or_drop() {
        let p = plan(vec![
            spec("a", Web, &[1]),
            spec("b", Web, &[0]),
            spec("c", Web, &[99]),
            spec("d", Web, &[0]),
        ]);
        assert_eq!(start_ranks(&p), vec![vec![2], vec![0, 1, 3]]);
        assert_eq!(stop_waves(&p), vec![vec![2, 3], vec![0, 1]]);
    }

    #[test]
    fn closure_is_transitive_and_ordered() {
        let p = plan(vec![
            spec("db", Cmd, &[]),        // 0
            spec("cache", Cmd, &[0]),    // 1
            spec("web", Web, &[1]),      // 2
            spec("worker", Worker, &[]), // 3
            spec("beat", Beat, &[3]),    // 4
        ]);
        assert_eq!(closure(&p, &[2]), vec![0, 1, 2]);
        assert_eq!(closure(&p, &[4, 2]), vec![0, 1, 2, 3, 4]);
        assert_eq!(closure(&p, &[3]), vec![3]);
        assert_eq!(closure(&p, &[]), Vec::<usize>::new());
        assert_eq!(closure(&p, &[2, 2, 42]), vec![0, 1, 2]);
    }

    #[test]
    fn closure_survives_cycles() {
        let p = plan(vec![
            spec("a", Web, &[1]),
            spec("b", Web, &[0]),
            spec("c", Web, &[]),
        ]);
        assert_eq!(closure(&p, &[0]), vec![0, 1]);
    }
}
