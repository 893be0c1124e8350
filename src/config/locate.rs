//! Which file is the config: `-c/--config`, else `PRODSERVER_CONFIG`, else
//! `prodserver.toml` in the current folder or the nearest parent folder
//! (as git finds `.git`), so commands work from anywhere in the project.

use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "prodserver.toml";

pub fn locate(flag: Option<&Path>, env: Option<&str>, cwd: &Path) -> Result<PathBuf, String> {
    if let Some(path) = flag {
        return Ok(cwd.join(path));
    }
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return Ok(cwd.join(path));
    }
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no {FILE_NAME} in {} or any parent folder; create one, or pass -c FILE (or set PRODSERVER_CONFIG)",
        cwd.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_env_then_nearest_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("mkdir");
        std::fs::write(dir.path().join(FILE_NAME), "").expect("write");
        assert_eq!(
            locate(Some(Path::new("x.toml")), Some("y.toml"), &nested),
            Ok(nested.join("x.toml"))
        );
        assert_eq!(
            locate(None, Some("y.toml"), &nested),
            Ok(nested.join("y.toml"))
        );
        assert_eq!(locate(None, None, &nested), Ok(dir.path().join(FILE_NAME)));
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(locate(None, None, empty.path())
            .unwrap_err()
            .contains("no prodserver.toml"));
    }
}
