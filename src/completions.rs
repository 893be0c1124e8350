//! `prodserver completions SHELL` and `prodserver man`: generated from the
//! same clap definition that parses the arguments, so they never drift from
//! the real flags. Printed, not installed: packagers and users put them
//! where their shell or `man` looks (see the README's Install section).

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "prodserver", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page (section 1) as roff, every subcommand listed.
pub fn man_page() -> Result<String, std::io::Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `prodserver.1` and one page per subcommand (`prodserver-export-systemd.1`
/// and so on, which the main page's SUBCOMMANDS section refers to) in `dir`.
pub fn write_man_pages(dir: &std::path::Path) -> Result<(), std::io::Error> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_completes_in_bash() {
        let s = script(Shell::Bash);
        for sub in Cli::command().get_subcommands() {
            assert!(s.contains(sub.get_name()), "{} missing", sub.get_name());
        }
    }

    #[test]
    fn the_man_page_is_roff() {
        let page = man_page().expect("render");
        assert!(page.contains(".TH prodserver 1"), "{page}");
    }
}
