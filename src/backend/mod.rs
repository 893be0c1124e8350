//! Backends: one small module per `backend = "..."`, each a pure function
//! from a typed process entry to argv + env. No I/O happens here, so every
//! backend is unit-tested on its exact argv.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::BackendKind;

/// One value of `args = { key = value }`.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `key = [a, b]`: the flag is repeated once per element (scalars only).
    List(Vec<ArgValue>),
}

/// What a backend sees of a process entry. Everything is already type-checked
/// by `config/`; a backend checks only what is specific to it.
#[derive(Debug, Clone)]
pub struct BackendInput<'a> {
    pub process: &'a str,
    pub project: &'a str,
    pub app: Option<&'a str>,
    /// `command` backend: the command, already split into words.
    pub command: Option<&'a [String]>,
    /// `program = "..."` override, already resolved against the config folder
    /// when it contains a slash.
    pub program: Option<&'a str>,
    /// `python = "..."` for manage.py backends, resolved like `program`.
    pub python: Option<&'a str>,
    pub queues: &'a [String],
    pub concurrency: Option<u32>,
    /// `args`, in file order.
    pub args: &'a [(String, ArgValue)],
    /// The environment the child will see (supervisor env merged with the
    /// file's env); read for variables such as `CELERYD_CONCURRENCY`.
    pub env: &'a BTreeMap<String, String>,
    /// prodserver's runtime directory (per-instance sockets live here).
    pub runtime_dir: &'a Path,
}

/// A backend's result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackendOutput {
    pub argv: Vec<String>,
    /// Variables the backend adds to the child's environment.
    pub env: BTreeMap<String, String>,
}

/// Which part of the entry a [`BackendError`] is about, so `config/` can
/// point at it in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Backend,
    App,
    Command,
    Program,
    Python,
    Queues,
    Concurrency,
    /// `args.KEY`
    Arg(String),
    /// A variable of the environment (e.g. `CELERYD_CONCURRENCY`).
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub field: Field,
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Top-level process keys whose meaning depends on the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKey {
    App,
    Command,
    Python,
    Queues,
    Concurrency,
}

/// Whether `kind` uses `key`; `config/` rejects the key otherwise.
pub fn supports(kind: BackendKind, key: BackendKey) -> bool {
    let _ = (kind, key);
    todo!("backend helper")
}

/// Build the command line for one process.
pub fn resolve(
    kind: BackendKind,
    input: &BackendInput,
) -> Result<BackendOutput, Vec<BackendError>> {
    let _ = (kind, input);
    todo!("backend helper")
}

pub fn default_stop_signal(kind: BackendKind) -> i32 {
    let _ = kind;
    todo!("backend helper")
}
