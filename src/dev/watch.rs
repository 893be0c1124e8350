//! The file system side: a notify watcher over the non-ignored folders of
//! the project, and the content of every watched file, to tell a real
//! change from a rewrite of the same bytes.
//!
//! Each folder gets its own non-recursive watch, added while walking the
//! tree, so ignored folders (a virtualenv, node_modules, .git) are never
//! descended into: no inotify watch is spent on them, no polling stats
//! them. A folder that appears later is walked and watched when its
//! creation is seen, and the files already in it count as changed.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::notify::event::EventKind;
use ::notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::filter::{Filter, IGNORE_FILES};

/// What the watcher thread passes on.
#[derive(Debug)]
pub enum Raw {
    Paths(Vec<PathBuf>),
    Error(String),
}

pub enum Backend {
    /// inotify (kqueue, FSEvents elsewhere).
    Native,
    /// Stats every watched folder at this interval: for mounts that do
    /// not deliver inotify events (Docker Desktop, WSL, NFS).
    Poll(Duration),
}

pub struct Watch {
    root: PathBuf,
    watcher: Box<dyn Watcher + Send>,
    filter: Filter,
    watched: BTreeSet<PathBuf>,
    /// Content hash of each watched file seen (`None`: absent), by path
    /// relative to the root.
    contents: BTreeMap<PathBuf, Option<u64>>,
    /// Problems found on the way, for the log.
    pub problems: Vec<String>,
}

/// A read cannot change what a process loads. Metadata changes stay: the
/// poll watcher reports a write as a new modification time, and a mere
/// `touch` is then dropped by the content check.
fn relevant(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

impl Watch {
    /// Walks and watches the tree under `root`. `wanted` tells which
    /// files (relative paths) some process watches: their contents are
    /// read now, so a later rewrite of the same bytes is not a change.
    pub fn start(
        root: &Path,
        runtime_dir: &Path,
        backend: Backend,
        tx: UnboundedSender<Raw>,
        wanted: &dyn Fn(&Path) -> bool,
    ) -> Result<Watch, ::notify::Error> {
        let handler = move |res: ::notify::Result<::notify::Event>| {
            let raw = match res {
                Ok(e) if relevant(&e.kind) => Raw::Paths(e.paths),
                Ok(_) => return,
                Err(e) => Raw::Error(e.to_string()),
            };
            let _ = tx.send(raw);
        };
        let watcher: Box<dyn Watcher + Send> = match backend {
            Backend::Native => Box::new(RecommendedWatcher::new(
                handler,
                ::notify::Config::default(),
            )?),
            Backend::Poll(interval) => Box::new(PollWatcher::new(
                handler,
                // Modification times are compared in whole seconds: a
                // second save within the same second would go unseen
                // without comparing contents.
                ::notify::Config::default()
                    .with_poll_interval(interval)
                    .with_compare_contents(true),
            )?),
        };
        let mut watch = Watch {
            root: root.to_path_buf(),
            watcher,
            filter: Filter::new(root, runtime_dir),
            watched: BTreeSet::new(),
            contents: BTreeMap::new(),
            problems: Vec::new(),
        };
        let files = watch.add_tree(root);
        for file in files {
            if let Ok(rel) = file.strip_prefix(root) {
                if wanted(rel) {
                    let hash = content(&file);
                    watch.contents.insert(rel.to_path_buf(), hash);
                }
            }
        }
        Ok(watch)
    }

    pub fn folders(&self) -> usize {
        self.watched.len()
    }

    /// Watches `dir` and every non-ignored folder below it; returns the
    /// files found.
    fn add_tree(&mut self, dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if self.watched.contains(&dir) {
                continue;
            }
            let problems = self.filter.load_rules(&dir);
            self.problems.extend(problems);
            if let Err(e) = self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                self.problems
                    .push(format!("cannot watch {}: {e}", dir.display()));
                continue;
            }
            self.watched.insert(dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // Symlinked folders are not followed: they may point
                // anywhere, loops included.
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if self.filter.ignored(&path, is_dir) {
                    continue;
                }
                if is_dir {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    /// The candidate changes (relative paths) an event's paths stand for:
    /// a new folder is watched and its files are candidates; an ignore
    /// file's change rereads its rules.
    pub fn candidates(&mut self, paths: Vec<PathBuf>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for path in paths {
            let is_dir = path.is_dir();
            if self.filter.ignored(&path, is_dir) {
                continue;
            }
            if is_dir {
                if !self.watched.contains(&path) {
                    out.extend(self.add_tree(&path));
                }
                continue;
            }
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| IGNORE_FILES.contains(&n))
            {
                if let Some(dir) = path.parent() {
                    let problems = self.filter.load_rules(dir);
                    self.problems.extend(problems);
                }
            }
            if !is_dir && !path.exists() {
                // A removed folder's watch went with it: forget it, so
                // the folder is watched again if it comes back.
                self.watched.remove(&path);
            }
            out.push(path);
        }
        out.into_iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok().map(Path::to_path_buf))
            .collect()
    }

    /// Whether the file's content differs from when it was last seen, and
    /// remembers it: an editor saving the same bytes, or a process
    /// rewriting its own generated file identically, changes nothing.
    pub fn changed(&mut self, rel: &Path) -> bool {
        let now = content(&self.root.join(rel));
        match self.contents.insert(rel.to_path_buf(), now) {
            Some(before) => before != now,
            None => true,
        }
    }
}

/// A hash of the file's bytes; `None` when it is absent or unreadable.
fn content(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}
