//! `prodserver completions SHELL` and `prodserver man`, through the binary:
//! both work without any config file (run from an empty folder), the bash
//! script completes every subcommand and bash itself loads it, and the man
//! page renders with `man -l` (or at least is roff, where `man` is absent).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn prodserver(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prodserver"))
        .args(args)
        .current_dir(dir)
        .env_remove("PRODSERVER_CONFIG")
        .output()
        .expect("run prodserver")
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

const SUBCOMMANDS: &[&str] = &[
    "check",
    "start",
    "status",
    "restart",
    "stop",
    "up",
    "scale",
    "reload",
    "logs",
    "export",
    "completions",
    "man",
];

#[test]
fn bash_completion_names_every_subcommand_and_loads_in_bash() {
    let empty = tempfile::tempdir().expect("tempdir");
    let script = ok_stdout(&prodserver(&["completions", "bash"], empty.path()));
    for sub in SUBCOMMANDS {
        assert!(script.contains(sub), "bash completion lacks {sub}");
    }
    // bash sources it and offers the subcommands for `prodserver ex<TAB>`.
    let file = empty.path().join("prodserver.bash");
    std::fs::write(&file, &script).expect("write");
    let probe = format!(
        "source {}; COMP_WORDS=(prodserver ex); COMP_CWORD=1; COMP_LINE='prodserver ex'; COMP_POINT=13; \
         _prodserver prodserver ex prodserver; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .expect("run bash");
    let offered = ok_stdout(&out);
    assert_eq!(offered.trim(), "export", "bash offered: {offered}");
}

#[test]
fn zsh_and_fish_scripts_are_generated() {
    let empty = tempfile::tempdir().expect("tempdir");
    let zsh = ok_stdout(&prodserver(&["completions", "zsh"], empty.path()));
    assert!(zsh.starts_with("#compdef prodserver"), "{zsh}");
    let fish = ok_stdout(&prodserver(&["completions", "fish"], empty.path()));
    for sub in SUBCOMMANDS {
        assert!(fish.contains(&format!("-a \"{sub}\"")), "fish lacks {sub}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let empty = tempfile::tempdir().expect("tempdir");
    let out = prodserver(&["completions", "tcsh"], empty.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash") && err.contains("fish"), "{err}");
}

#[test]
fn man_output_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let pages_arg = pages.to_str().expect("utf-8");
    ok_stdout(&prodserver(&["man", "-o", pages_arg], dir.path()));
    for page in [
        "prodserver.1",
        "prodserver-check.1",
        "prodserver-export-kubernetes.1",
    ] {
        let text =
            std::fs::read_to_string(pages.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}: {text}");
    }
}

#[test]
fn the_man_page_renders() {
    let empty = tempfile::tempdir().expect("tempdir");
    let page = ok_stdout(&prodserver(&["man"], empty.path()));
    assert!(page.contains(".TH prodserver 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    let man = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("man"))
            .find(|p| p.is_file())
    });
    let Some(man) = man else {
        return; // checked as roff above: nothing renders it on this host
    };
    let mut child = Command::new(man)
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run man");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("feed man");
    let rendered = ok_stdout(&child.wait_with_output().expect("man output"));
    assert!(rendered.contains("NAME"), "{rendered}");
    assert!(
        rendered.contains("Run a Django + Celery process set"),
        "{rendered}"
    );
    assert!(rendered.contains("completions"), "{rendered}");
}
