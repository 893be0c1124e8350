//! What one memory sweep costs in CPU: prodserver's /proc reads
//! (`os::memory`) against sysinfo's targeted refresh, over N real
//! processes (`sleep`). Built as an example:
//!
//!   cargo run --release --example bench-memory -- [N ...]   (default 50 1000)
//!   cargo run --release --example bench-memory -- tree PID
//!
//! The second form prints PID's tree in RSS, PSS and USS, in total and per
//! direct child, as prodserver measures it (bench/pool-memory.sh runs it
//! on a gunicorn pool).
//!
//! Prints markdown table rows (bench/run.sh adds them to its table), then
//! details on stderr. CPU time is CLOCK_PROCESS_CPUTIME_ID (user + system,
//! every thread) around one sweep; each figure is the median of several
//! sweeps after a warm-up one. The sleepers are this process's children
//! and are killed on exit.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prodserver::os::memory::Sampler;
use prodserver::plan::MemoryMetric;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The decided defaults: one PSS sample every 250 ms.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// A typical max_memory_per_child.
const LIMIT: u64 = 300 << 20;

struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn spawn_sleepers(n: usize) -> Sleepers {
    let mut all = Sleepers(Vec::with_capacity(n));
    for _ in 0..n {
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep");
        all.0.push(child);
    }
    // Measured once each has become `sleep` (not a half-exec'd fork of us).
    let deadline = Instant::now() + Duration::from_secs(60);
    for c in &all.0 {
        while std::fs::read_to_string(format!("/proc/{}/comm", c.id()))
            .ok()
            .as_deref()
            != Some(
                "sleep
",
            )
        {
            assert!(Instant::now() < deadline, "sleepers did not start");
            std::thread::yield_now();
        }
    }
    all
}

fn cpu_now() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .expect("CLOCK_PROCESS_CPUTIME_ID");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// Median CPU time of `sweep` over `runs` runs, after one warm-up; and
/// what the last run returned.
fn measure<T>(runs: usize, mut sweep: impl FnMut() -> T) -> (Duration, T) {
    let mut last = sweep();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = cpu_now();
        last = std::hint::black_box(sweep());
        times.push(cpu_now() - t0);
    }
    times.sort();
    (times[runs / 2], last)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `tree PID`: one table of PID's tree in the three metrics.
fn tree(root: i32) {
    let metrics = [MemoryMetric::Rss, MemoryMetric::Pss, MemoryMetric::Uss];
    let samples: Vec<_> = metrics
        .iter()
        .map(|&m| prodserver::os::memory::sample_tree(root, m).expect("no such process"))
        .collect();
    println!("| process | rss | pss | uss |");
    println!("|---|---|---|---|");
    let row = |name: String, f: &dyn Fn(&prodserver::os::TreeSample) -> u64| {
        let cells: Vec<String> = samples.iter().map(|s| mib(f(s))).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row(
        format!("whole tree ({} processes)", samples[0].processes),
        &|s| s.bytes,
    );
    row(format!("{root} (root alone)"), &|s| {
        s.bytes - s.children.iter().map(|c| c.bytes).sum::<u64>()
    });
    for (i, c) in samples[0].children.iter().enumerate() {
        row(format!("{} (child {})", c.pid, i + 1), &|s| {
            s.children
                .iter()
                .find(|x| x.pid == c.pid)
                .map_or(0, |x| x.bytes)
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("tree") {
        tree(args.get(2).and_then(|p| p.parse().ok()).expect("tree PID"));
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 1000]
    } else {
        sizes
    };
    let me = std::process::id() as i32;
    let mut details = Vec::new();
    let mut rows = Vec::new();
    for n in sizes {
        let sleepers = spawn_sleepers(n);
        let pids: Vec<i32> = sleepers.0.iter().map(|c| c.id() as i32).collect();
        let runs = if n >= 500 { 11 } else { 31 };

        // Our reads, as the sampler will run them: one tree per instance.
        let mut ours = Vec::new();
        for metric in [MemoryMetric::Rss, MemoryMetric::Pss, MemoryMetric::Uss] {
            let mut sampler = Sampler::new();
            let (cpu, total) = measure(runs, || {
                let total = pids
                    .iter()
                    .filter_map(|&p| sampler.sample_tree(p, metric))
                    .map(|s| s.bytes)
                    .sum::<u64>();
                sampler.end_sweep();
                total
            });
            details.push(format!(
                "{n} trees of 1, {metric:?}: {} ms CPU per sweep, {} MiB in all",
                ms(cpu),
                total >> 20
            ));
            ours.push(cpu);
        }
        // The limit check as the sampler makes it: PSS against 300 MiB,
        // read only for trees whose RSS is over it (none of these).
        let mut sampler = Sampler::new();
        let (within, total) = measure(runs, || {
            let total = pids
                .iter()
                .filter_map(|&p| sampler.sample_tree_within(p, MemoryMetric::Pss, LIMIT))
                .map(|s| s.bytes)
                .sum::<u64>();
            sampler.end_sweep();
            total
        });
        details.push(format!(
            "{n} trees of 1, Pss within 300 MiB: {} ms CPU per sweep, {} MiB in all",
            ms(within),
            total >> 20
        ));

        // The same processes as ONE tree (this process and its children):
        // the cost of finding descendants, with the children files and
        // with the parent scan of kernels that have none.
        let mut sampler = Sampler::new();
        let (tree, s) = measure(runs, || sampler.sample_tree(me, MemoryMetric::Pss));
        let counted = s.map_or(0, |s| s.processes);
        details.push(format!(
            "one tree of {counted} (children files), Pss: {} ms CPU",
            ms(tree)
        ));
        let mut scanning = Sampler::scanning_parents();
        let (scan, s) = measure(runs, || scanning.sample_tree(me, MemoryMetric::Pss));
        details.push(format!(
            "one tree of {} (parent scan of all /proc), Pss: {} ms CPU",
            s.map_or(0, |s| s.processes),
            ms(scan)
        ));

        // sysinfo's targeted refresh, memory only: RSS (it has no PSS or
        // USS). The warm-up run creates its entries and opens the files it
        // keeps open.
        let sys_pids: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p as u32)).collect();
        let mut sys = System::new();
        let (targeted, updated) = measure(runs, || {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&sys_pids),
                true,
                ProcessRefreshKind::nothing().with_memory(),
            )
        });
        details.push(format!(
            "sysinfo targeted refresh of {updated} pids, memory only: {} ms CPU",
            ms(targeted)
        ));
        // Finding descendants with sysinfo takes every process's parent:
        // a full refresh.
        let mut sys = System::new();
        let (full, updated) = measure(runs, || {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::All,
                true,
                ProcessRefreshKind::nothing().with_memory(),
            )
        });
        details.push(format!(
            "sysinfo full refresh ({updated} processes on this machine), memory only: {} ms CPU",
            ms(full)
        ));

        rows.push(format!(
            "| memory sweep, {n} processes: /proc rss / pss / uss | {} / {} / {} ms CPU | ≤ 20 ms at 1,000 |",
            ms(ours[0]),
            ms(ours[1]),
            ms(ours[2])
        ));
        rows.push(format!(
            "| memory sweep, {n} processes: pss limit check, 300 MiB (rss bounds it) | {} ms CPU | ≤ 20 ms at 1,000 |",
            ms(within)
        ));
        rows.push(format!(
            "| memory sweep, {n} processes: sysinfo targeted refresh (rss; it has no pss/uss) | {} ms CPU | (comparison) |",
            ms(targeted)
        ));
        if n == 50 {
            let share = |d: Duration| d.as_secs_f64() / DEFAULT_INTERVAL.as_secs_f64() * 100.0;
            rows.push(format!(
                "| defaults' cost, 50 processes, one sample every 250 ms: pss read / limit check | {:.2}% / {:.2}% of one core | |",
                share(ours[1]),
                share(within)
            ));
        }
        drop(sleepers);
    }
    for r in rows {
        println!("{r}");
    }
    for d in details {
        eprintln!("{d}");
    }
}
