//! `prodserver.toml`: finding it, reading it, and validating it into a
//! [`crate::plan::Plan`]. Every problem is reported with file:line:col, what
//! is wrong and how to fix it, and all of them at once.

pub mod diagnostic;
pub mod envfile;
mod interpolate;
mod load;
pub mod locate;
mod read;
pub mod schema;

/// Durations and sizes live outside `config/` (the engine formats them
/// too); re-exported for the code that reads them from here.
pub use crate::units;
pub use diagnostic::{Diagnostic, Severity, Sources};
pub use load::{
    listen_addresses, load, load_str, one_line, span_at, span_in, unconsumed_queues, LoadError,
    LoadOptions, Loaded, ProbeAt, MAX_INSTANCES,
};
pub use read::did_you_mean as read_suggest;
#[cfg(test)]
mod tests;
