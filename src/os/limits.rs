//! The open-file limit: raised for prodserver, restored for its children.
//!
//! systemd starts services with a soft RLIMIT_NOFILE of 1024 (the hard one
//! is far higher) because `select()` breaks above 1024. prodserver needs a
//! few descriptors per instance (two log pipes, a notify socket, probes):
//! with the soft limit, 300 instances stop starting at about 250, with
//! EMFILE. So prodserver raises its own soft limit to the hard limit at
//! start, and hands its children the soft limit it was given, as systemd
//! intends: a Python program using `select()` keeps working.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit prodserver was started with, for children; `u64::MAX`
/// while nothing was raised (then children inherit ours unchanged).
static ORIGINAL_SOFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// What [`raise_nofile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// The soft limit prodserver was started with (children get it back).
    pub original_soft: u64,
    /// prodserver's soft limit now.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
pub fn raise_nofile() -> io::Result<NofileLimits> {
    let (soft, hard) = get()?;
    if soft < hard {
        set(hard, hard)?;
        ORIGINAL_SOFT.store(soft, Ordering::Relaxed);
    }
    Ok(NofileLimits {
        original_soft: soft,
        soft: hard.max(soft),
        hard,
    })
}

/// `(soft, hard)`.
pub fn nofile() -> io::Result<(u64, u64)> {
    get()
}

fn get() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into our stack struct only.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads our stack struct only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In a forked child before exec: give back the soft limit prodserver was
/// started with. Async-signal-safe (one atomic load, two system calls).
pub(crate) fn restore_for_child() {
    let soft = ORIGINAL_SOFT.load(Ordering::Relaxed);
    if soft == u64::MAX {
        return;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our stack struct; both are
    // async-signal-safe system calls. A failure leaves the raised limit,
    // which is harmless.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = soft.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
