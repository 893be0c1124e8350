//! Throughput of the merged log stream: 4 `seq` children × 5M short lines,
//! pumped to our stdout. Run with stdout redirected:
//!
//! ```text
//! cargo run --release --example logs_bench > /dev/null          # text
//! cargo run --release --example logs_bench -- json > /dev/null  # JSON
//! ```

use std::process::Stdio;
use std::time::Instant;

use prodserver::logs::{Format, Logs, Stream};
use tokio::process::Command;

const LINES_PER_CHILD: u64 = 5_000_000;
const CHILDREN: u64 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let format = if std::env::args().any(|a| a == "json") {
        Format::Json
    } else {
        Format::Text { color: false }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (logs, handle) = Logs::start(format, 4, Box::new(std::io::stdout()))?;
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..CHILDREN {
            let mut child = Command::new("seq")
                .arg(LINES_PER_CHILD.to_string())
                .stdout(Stdio::piped())
                .spawn()?;
            let pid = child.id().unwrap_or(0);
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let pump = logs.pump(format!("w{i}"), 1, pid, Stream::Stdout, stdout);
            tasks.push(tokio::spawn(async move {
                pump.await;
                child.wait().await
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    handle.flush_and_stop()?;
    let secs = start.elapsed().as_secs_f64();
    let lines = LINES_PER_CHILD * CHILDREN;
    eprintln!(
        "{lines} lines in {secs:.2}s = {:.1} M lines/s",
        lines as f64 / secs / 1e6
    );
    Ok(())
}
