//! When an instance is recycled: pure decisions over memory samples and
//! finished-task counts.
//!
//! Theory of operation. The sampler (off the event loop) measures each
//! instance's process tree every `memory_interval` and the core feeds each
//! [`Sample`] of the current incarnation to that instance's [`Watch`]. Only
//! `memory_samples` consecutive samples over the limit recycle: one spike
//! (a large request, an import) does not. With `memory_scope = "child"`
//! the limit applies to each direct child of the main process (a gunicorn
//! worker) and only that child is told to go; its parent replaces it.
//! Tasks are counted per incarnation from `TASKS_DONE`, so a recycle
//! happens after exactly `max_tasks_per_child` finished tasks.
//!
//! A watch belongs to one incarnation: a new spawn gets a fresh one. It
//! says "recycle" at every observation while the condition holds; the core
//! acts once (an instance already stopping or queued for its turn is not
//! queued again), and a rollout that was aborted meanwhile is simply
//! asked again by the next sample.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Limits, MemoryMetric, MemoryScope};

/// One measurement of an instance's process tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// What `bytes` measures: the instance's metric, or RSS where that
    /// alone proved the tree within its limit.
    pub metric: MemoryMetric,
    /// The whole tree.
    pub bytes: u64,
    /// Processes in the tree.
    pub processes: u32,
    /// Each direct child of the main process: pid, its subtree's bytes.
    pub children: Vec<(i32, u64)>,
}

/// What the watch wants done; the reasons are whole phrases for the log
/// (`recycled after 5 tasks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Recycle the whole instance, for this reason (logged and kept for
    /// `status`). `guarded`: a memory limit, which a process may breach at
    /// every start (see `AfterStop::Recycle`).
    Recycle { reason: String, guarded: bool },
    /// Ask this direct child of the main process to finish and exit (its
    /// parent replaces it).
    RecycleChild { pid: i32, reason: String },
}

/// The recycling state of one incarnation.
#[derive(Debug, Clone)]
pub struct Watch {
    limit: Option<u64>,
    samples: u32,
    scope: MemoryScope,
    max_tasks: Option<u64>,
    /// Consecutive samples over the limit (instance scope).
    over: u32,
    /// Consecutive samples over the limit, per child (child scope).
    child_over: BTreeMap<i32, u32>,
    /// Children told to go: not told twice while they drain.
    told: BTreeSet<i32>,
    /// Tasks finished by this incarnation.
    tasks: u64,
}

impl Watch {
    pub fn new(limits: &Limits) -> Watch {
        Watch {
            limit: limits.max_memory_per_child,
            samples: limits.memory_samples.max(1),
            scope: limits.memory_scope,
            max_tasks: limits.max_tasks_per_child,
            over: 0,
            child_over: BTreeMap::new(),
            told: BTreeSet::new(),
            tasks: 0,
        }
    }

    /// Tasks finished by this incarnation.
    pub fn tasks(&self) -> u64 {
        self.tasks
    }

    /// A memory sample of this incarnation.
    pub fn sample(&mut self, s: &Sample) -> Option<Decision> {
        let limit = self.limit?;
        match self.scope {
            MemoryScope::Instance => {
                if s.bytes <= limit {
                    self.over = 0;
                    return None;
                }
                self.over = self.over.saturating_add(1);
                if self.over < self.samples {
                    return None;
                }
                Some(Decision::Recycle {
                    reason: format!(
                        "recycled: {} > {} ({}, tree of {}, {} {})",
                        mib(s.bytes),
                        mib(limit),
                        s.metric.name(),
                        s.processes,
                        self.over,
                        if self.over == 1 { "sample" } else { "samples" }
                    ),
                    guarded: true,
                })
            }
            MemoryScope::Child => {
                // Children that are gone (or replaced) start afresh.
                let alive: BTreeSet<i32> = s.children.iter().map(|c| c.0).collect();
                self.child_over.retain(|pid, _| alive.contains(pid));
                self.told.retain(|pid| alive.contains(pid));
                let mut decision = None;
                for &(pid, bytes) in &s.children {
                    if self.told.contains(&pid) {
                        continue;
                    }
                    if bytes <= limit {
                        self.child_over.remove(&pid);
                        continue;
                    }
                    let n = self.child_over.entry(pid).or_insert(0);
                    *n = n.saturating_add(1);
                    // One child at a time: the others keep serving.
                    if *n >= self.samples && decision.is_none() && self.told.is_empty() {
                        let count = *n;
                        self.told.insert(pid);
                        self.child_over.remove(&pid);
                        decision = Some(Decision::RecycleChild {
                            pid,
                            reason: format!(
                                "recycling child pid {pid}: {} > {} ({}, {} {})",
                                mib(bytes),
                                mib(limit),
                                s.metric.name(),
                                count,
                                if count == 1 { "sample" } else { "samples" }
                            ),
                        });
                    }
                }
                decision
            }
        }
    }

    /// `n` more tasks finished.
    pub fn tasks_done(&mut self, n: u64) -> Option<Decision> {
        self.tasks = self.tasks.saturating_add(n);
        let max = self.max_tasks?;
        if self.tasks < max {
            return None;
        }
        Some(Decision::Recycle {
            reason: match self.tasks {
                1 => "recycled after 1 task".to_string(),
                n => format!("recycled after {n} tasks"),
            },
            guarded: false,
        })
    }
}

/// `312 MiB`: whole MiB below 10 GiB, one decimal of GiB above, KiB
/// below one MiB.
pub fn mib(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= 10 * 1024 * MIB {
        format!("{:.1} GiB", bytes as f64 / (1024 * MIB) as f64)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: u64 = 1024 * 1024;

    fn limits(limit: Option<u64>, samples: u32, scope: MemoryScope) -> Limits {
        Limits {
            max_memory_per_child: limit,
            max_tasks_per_child: None,
            memory_metric: MemoryMetric::Pss,
            memory_interval: Duration::from_millis(250),
            memory_samples: samples,
            memory_scope: scope,
            server_recycling: None,
        }
    }

    fn tree(bytes: u64, processes: u32) -> Sample {
        Sample {
            metric: MemoryMetric::Pss,
            bytes,
            processes,
            children: Vec::new(),
        }
    }

    #[test]
    fn recycles_after_consecutive_samples_over_the_limit() {
        let mut w = Watch::new(&limits(Some(300 * MIB), 3, MemoryScope::Instance));
        assert_eq!(w.sample(&tree(312 * MIB, 5)), None);
        assert_eq!(w.sample(&tree(312 * MIB, 5)), None);
        assert_eq!(
            w.sample(&tree(312 * MIB, 5)),
            Some(Decision::Recycle {
                reason: "recycled: 312 MiB > 300 MiB (pss, tree of 5, 3 samples)".into(),
                guarded: true
            })
        );
        // Still over: still says so (the core acts once).
        assert!(w.sample(&tree(400 * MIB, 5)).is_some());
    }

    #[test]
    fn a_spike_below_the_sample_count_resets() {
        let mut w = Watch::new(&limits(Some(300 * MIB), 2, MemoryScope::Instance));
        assert_eq!(w.sample(&tree(301 * MIB, 1)), None);
        assert_eq!(w.sample(&tree(300 * MIB, 1)), None, "at the limit is fine");
        assert_eq!(w.sample(&tree(301 * MIB, 1)), None);
        assert!(w.sample(&tree(301 * MIB, 1)).is_some());
    }

    #[test]
    fn no_limit_never_recycles_on_memory() {
        let mut w = Watch::new(&limits(None, 1, MemoryScope::Instance));
        assert_eq!(w.sample(&tree(u64::MAX, 1)), None);
    }

    #[test]
    fn one_sample_suffices_when_asked() {
        let mut w = Watch::new(&limits(Some(MIB), 1, MemoryScope::Instance));
        assert_eq!(
            w.sample(&tree(2 * MIB, 1)),
            Some(Decision::Recycle {
                reason: "recycled: 2 MiB > 1 MiB (pss, tree of 1, 1 sample)".into(),
                guarded: true
            })
        );
    }

    #[test]
    fn child_scope_tells_one_fat_child_and_not_twice() {
        let mut w = Watch::new(&limits(Some(100 * MIB), 2, MemoryScope::Child));
        let s = |a: u64, b: u64| Sample {
            metric: MemoryMetric::Pss,
            bytes: a + b,
            processes: 3,
            children: vec![(10, a), (11, b)],
        };
        assert_eq!(w.sample(&s(150 * MIB, 150 * MIB)), None);
        assert_eq!(
            w.sample(&s(150 * MIB, 150 * MIB)),
            Some(Decision::RecycleChild {
                pid: 10,
                reason: "recycling child pid 10: 150 MiB > 100 MiB (pss, 2 samples)".into()
            })
        );
        // 10 drains; 11 waits for its turn even though it is over too.
        assert_eq!(w.sample(&s(150 * MIB, 150 * MIB)), None);
        // 10 is gone (its parent replaced it with 12): 11's turn.
        let after = Sample {
            metric: MemoryMetric::Pss,
            bytes: 0,
            processes: 3,
            children: vec![(11, 150 * MIB), (12, MIB)],
        };
        assert!(matches!(
            w.sample(&after),
            Some(Decision::RecycleChild { pid: 11, .. })
        ));
    }

    #[test]
    fn child_scope_ignores_the_tree_total() {
        let mut w = Watch::new(&limits(Some(100 * MIB), 1, MemoryScope::Child));
        let s = Sample {
            metric: MemoryMetric::Pss,
            bytes: 500 * MIB,
            processes: 6,
            children: vec![(1, 90 * MIB), (2, 90 * MIB), (3, 90 * MIB)],
        };
        assert_eq!(w.sample(&s), None);
    }

    #[test]
    fn tasks_recycle_at_n_exactly() {
        let mut l = limits(None, 3, MemoryScope::Instance);
        l.max_tasks_per_child = Some(5);
        let mut w = Watch::new(&l);
        for _ in 0..4 {
            assert_eq!(w.tasks_done(1), None);
        }
        assert_eq!(
            w.tasks_done(1),
            Some(Decision::Recycle {
                reason: "recycled after 5 tasks".into(),
                guarded: false
            })
        );
        assert_eq!(w.tasks(), 5);
        // A fresh incarnation counts from zero.
        let mut w = Watch::new(&l);
        assert_eq!(w.tasks_done(4), None);
        assert!(w.tasks_done(1).is_some());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(mib(312 * MIB + 5), "312 MiB");
        assert_eq!(mib(12 * 1024 * MIB), "12.0 GiB");
        assert_eq!(mib(900 * 1024), "900 KiB");
    }
}
