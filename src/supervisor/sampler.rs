//! Measuring instances off the event loop.
//!
//! Theory of operation. One thread owns an [`os::memory::Sampler`] and the
//! list of running instances (main pid, generation, metric, interval). It
//! sleeps until the next instance is due, measures its process tree
//! (/proc reads: smaps_rollup for PSS costs tens of microseconds a
//! process, and must never delay a signal or an exit on the loop) and
//! sends the sample to the loop, tagged with the generation so a sample
//! of a previous incarnation is dropped by the core. Instances with a
//! memory limit are measured every `memory_interval`; the others every
//! [`STATUS_INTERVAL`], only so that `status` can show their figures.
//!
//! PSS costs about ten times RSS (smaps_rollup walks the page tables), and
//! PSS and USS are never above RSS: a tree whose RSS is within its limit is
//! reported as RSS and never read further, and an instance without a limit
//! is measured by RSS alone. Only a tree over its limit by RSS pays for the
//! metric asked (see `os::memory`).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::core::InstanceId;
use super::engine::Msg;
use super::recycle::Sample;
use crate::os::memory::Sampler;
use crate::plan::{Limits, MemoryMetric};

/// How often an instance without a memory limit is measured.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The longest wait for a new process's first sample.
const FIRST_SAMPLE: Duration = Duration::from_secs(1);

enum Change {
    Watch {
        id: InstanceId,
        generation: u64,
        pid: i32,
        metric: MemoryMetric,
        limit: u64,
        interval: Duration,
    },
    Forget {
        id: InstanceId,
    },
}

/// The loop's handle on the sampling thread; dropping it ends the thread.
pub(super) struct Sampling {
    tx: mpsc::Sender<Change>,
}

struct Entry {
    generation: u64,
    pid: i32,
    metric: MemoryMetric,
    /// RSS within this settles it (`u64::MAX`: no limit, RSS only).
    limit: u64,
    interval: Duration,
    next: Instant,
    /// CPU ticks of the tree at the previous sample, and when.
    last_cpu: Option<(u64, Instant)>,
}

impl Sampling {
    /// Starts the thread; samples go to `report`.
    pub fn start(report: tokio::sync::mpsc::UnboundedSender<Msg>) -> std::io::Result<Sampling> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("prodserver-sampler".into())
            .spawn(move || run(&rx, &report))?;
        Ok(Sampling { tx })
    }

    /// Measures instance `id`'s tree from now on (replacing a previous
    /// incarnation's).
    pub fn watch(&self, id: &InstanceId, generation: u64, pid: i32, limits: &Limits) {
        let (limit, interval) = match limits.max_memory_per_child {
            Some(limit) => (limit, limits.memory_interval),
            None => (u64::MAX, STATUS_INTERVAL.max(limits.memory_interval)),
        };
        let _ = self.tx.send(Change::Watch {
            id: id.clone(),
            generation,
            pid,
            metric: limits.memory_metric,
            limit,
            interval,
        });
    }

    /// The instance's process exited: stop measuring it.
    pub fn forget(&self, id: &InstanceId) {
        let _ = self.tx.send(Change::Forget { id: id.clone() });
    }
}

fn run(rx: &mpsc::Receiver<Change>, report: &tokio::sync::mpsc::UnboundedSender<Msg>) {
    let mut sampler = Sampler::new();
    let mut watched: BTreeMap<InstanceId, Entry> = BTreeMap::new();
    let ticks = crate::os::memory::clock_ticks_per_second();
    loop {
        let next = watched.values().map(|e| e.next).min();
        let change = match next {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match change {
            Ok(c) => {
                apply(&mut watched, c);
                // Take every change that is waiting before measuring.
                while let Ok(c) = rx.try_recv() {
                    apply(&mut watched, c);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        // One message per sweep: the loop takes a whole sweep in one turn.
        let mut sweep = Vec::new();
        // Whatever falls due within half its interval is measured now too,
        // and from now on keeps this sweep's cadence: instances spawned at
        // different moments join one sweep instead of waking the thread (and
        // the loop) once each.
        for (id, e) in watched
            .iter_mut()
            .filter(|(_, e)| e.next <= now + e.interval / 2)
        {
            e.next = now + e.interval;
            let Some(tree) = sampler.sample_tree_within(e.pid, e.metric, e.limit) else {
                // Gone: its exit is on the way to the loop.
                continue;
            };
            let at = Instant::now();
            let cpu_tenths = e.last_cpu.and_then(|(before, then)| {
                cpu_tenths(tree.cpu_ticks.saturating_sub(before), at - then, ticks)
            });
            e.last_cpu = Some((tree.cpu_ticks, at));
            let sample = Sample {
                metric: tree.metric,
                bytes: tree.bytes,
                processes: tree.processes,
                children: tree.children.iter().map(|c| (c.pid, c.bytes)).collect(),
            };
            sweep.push(super::engine::Usage {
                id: id.clone(),
                generation: e.generation,
                sample,
                cpu_tenths,
            });
        }
        if !sweep.is_empty() && report.send(Msg::Usage(sweep)).is_err() {
            return;
        }
        // Close the kept /proc files of processes that are gone.
        sampler.end_sweep();
    }
}

fn apply(watched: &mut BTreeMap<InstanceId, Entry>, change: Change) {
    match change {
        Change::Watch {
            id,
            generation,
            pid,
            metric,
            limit,
            interval,
        } => {
            watched.insert(
                id,
                Entry {
                    generation,
                    pid,
                    metric,
                    limit,
                    interval,
                    // Soon, but not at once: right after exec a process
                    // has faulted in almost nothing, and `status` would
                    // show it at 0 until the next sample.
                    next: Instant::now() + interval.min(FIRST_SAMPLE),
                    last_cpu: None,
                },
            );
        }
        Change::Forget { id } => {
            watched.remove(&id);
        }
    }
}

/// CPU use over `elapsed`, in tenths of a percent of one core.
fn cpu_tenths(ticks: u64, elapsed: Duration, per_second: u64) -> Option<u32> {
    let elapsed = elapsed.as_secs_f64();
    if elapsed <= 0.0 || per_second == 0 {
        return None;
    }
    let tenths = ticks as f64 / per_second as f64 / elapsed * 1000.0;
    Some(tenths.round().min(f64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_in_tenths_of_a_percent() {
        // 50 ticks of 100/s over one second: half a core.
        assert_eq!(cpu_tenths(50, Duration::from_secs(1), 100), Some(500));
        assert_eq!(cpu_tenths(400, Duration::from_secs(2), 100), Some(2000));
        assert_eq!(cpu_tenths(1, Duration::ZERO, 100), None);
        assert_eq!(cpu_tenths(1, Duration::from_secs(1), 0), None);
    }
}
