//! What the watcher never looks at: version control and cache folders,
//! virtualenvs, the runtime directory, and whatever `.gitignore` and
//! `.ignore` files list (matched by the `ignore` crate, as ripgrep and
//! watchexec do).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// Folder names never watched, wherever they are.
pub const IGNORED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "node_modules",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
];

/// Byte code is written by the very processes being restarted.
pub const IGNORED_EXTENSIONS: &[&str] = &["pyc", "pyo"];

/// The files each folder may hold with ignore rules for its subtree.
pub const IGNORE_FILES: &[&str] = &[".gitignore", ".ignore"];

pub struct Filter {
    root: PathBuf,
    runtime_dir: PathBuf,
    /// Per folder holding a `.gitignore` or `.ignore`, its rules.
    rules: BTreeMap<PathBuf, Gitignore>,
}

impl Filter {
    pub fn new(root: &Path, runtime_dir: &Path) -> Filter {
        Filter {
            root: root.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
            rules: BTreeMap::new(),
        }
    }

    /// (Re)reads `dir`'s ignore files; called for every folder walked and
    /// whenever one of them changes. Unreadable rules are reported, and the
    /// folder is then watched as if they were absent.
    pub fn load_rules(&mut self, dir: &Path) -> Vec<String> {
        let mut builder = GitignoreBuilder::new(dir);
        let mut any = false;
        let mut problems = Vec::new();
        for name in IGNORE_FILES {
            let file = dir.join(name);
            if file.is_file() {
                any = true;
                if let Some(e) = builder.add(&file) {
                    problems.push(format!("{}: {e}", file.display()));
                }
            }
        }
        if !any {
            self.rules.remove(dir);
            return problems;
        }
        match builder.build() {
            Ok(gi) => {
                self.rules.insert(dir.to_path_buf(), gi);
            }
            Err(e) => problems.push(format!("{}: {e}", dir.display())),
        }
        problems
    }

    /// Whether `path` (absolute, under the root) is ignored. `is_dir` as
    /// far as known: a deleted path is no longer anything.
    pub fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        if path.starts_with(&self.runtime_dir) {
            return true;
        }
        let names: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        let parent_count = if is_dir {
            names.len()
        } else {
            names.len().saturating_sub(1)
        };
        if names[..parent_count]
            .iter()
            .any(|n| IGNORED_DIRS.contains(n))
        {
            return true;
        }
        if !is_dir
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IGNORED_EXTENSIONS.contains(&e))
        {
            return true;
        }
        // A virtualenv under any name: python -m venv writes pyvenv.cfg.
        let mut dir = if is_dir { Some(path) } else { path.parent() };
        while let Some(d) = dir {
            if !d.starts_with(&self.root) {
                break;
            }
            if d != self.root && d.join("pyvenv.cfg").is_file() {
                return true;
            }
            dir = d.parent();
        }
        // The deepest rules that say something decide (a nested `!keep`
        // re-includes what a parent folder's rules exclude).
        for (dir, gi) in self.rules.iter().rev() {
            if !path.starts_with(dir) || path == dir {
                continue;
            }
            match gi.matched_path_or_any_parents(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Filter) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "build/\n*.log\n").unwrap();
        std::fs::create_dir_all(root.join("app/static")).unwrap();
        std::fs::write(root.join("app/.ignore"), "static/\n!keep.log\n").unwrap();
        std::fs::create_dir_all(root.join("env/lib")).unwrap();
        std::fs::write(root.join("env/pyvenv.cfg"), "home = /usr\n").unwrap();
        let mut f = Filter::new(root, &root.join("run"));
        assert!(f.load_rules(root).is_empty());
        assert!(f.load_rules(&root.join("app")).is_empty());
        (dir, f)
    }

    #[test]
    fn fixed_folders_and_byte_code_are_ignored() {
        let (dir, f) = tree();
        let r = dir.path();
        assert!(f.ignored(&r.join(".git/index"), false));
        assert!(f.ignored(&r.join("app/__pycache__/x.cpython-312.pyc"), false));
        assert!(f.ignored(&r.join("app/__pycache__"), true));
        assert!(f.ignored(&r.join("app/x.pyc"), false));
        assert!(f.ignored(&r.join("node_modules/a/index.js"), false));
        assert!(f.ignored(&r.join(".venv/lib/site.py"), false));
        assert!(!f.ignored(&r.join("app/models.py"), false));
        // A file merely named like an ignored folder is not ignored.
        assert!(!f.ignored(&r.join("app/venv"), false));
    }

    #[test]
    fn a_virtualenv_under_any_name_is_ignored() {
        let (dir, f) = tree();
        assert!(f.ignored(&dir.path().join("env"), true));
        assert!(f.ignored(&dir.path().join("env/lib/site.py"), false));
    }

    #[test]
    fn the_runtime_directory_and_paths_outside_the_root_are_ignored() {
        let (dir, f) = tree();
        assert!(f.ignored(&dir.path().join("run/web.sock"), false));
        assert!(f.ignored(Path::new("/etc/passwd"), false));
    }

    #[test]
    fn gitignore_and_ignore_rules_apply_to_their_subtree() {
        let (dir, f) = tree();
        let r = dir.path();
        assert!(f.ignored(&r.join("build"), true));
        assert!(f.ignored(&r.join("build/lib/x.py"), false));
        assert!(f.ignored(&r.join("debug.log"), false));
        assert!(f.ignored(&r.join("app/static/x.py"), false));
        // Only under app/: the root has no rule for static/.
        assert!(!f.ignored(&r.join("static/x.py"), false));
        // A nested negation re-includes.
        assert!(!f.ignored(&r.join("app/keep.log"), false));
    }

    #[test]
    fn rules_are_reread_when_their_file_changes() {
        let (dir, mut f) = tree();
        let r = dir.path();
        assert!(!f.ignored(&r.join("docs/x.py"), false));
        std::fs::write(r.join(".gitignore"), "docs/\n").unwrap();
        f.load_rules(r);
        assert!(f.ignored(&r.join("docs/x.py"), false));
        assert!(!f.ignored(&r.join("debug.log"), false));
    }
}
