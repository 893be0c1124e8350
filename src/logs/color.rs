//! Whether to colour, and which colour a process gets.

/// Foreground colours that read well on both dark and light terminals.
/// Red is left out on purpose: it reads as "error" and every process would
/// look like it is failing.
const PALETTE: [&str; 10] = [
    "36", // cyan
    "33", // yellow
    "32", // green
    "35", // magenta
    "34", // blue
    "96", // bright cyan
    "93", // bright yellow
    "92", // bright green
    "95", // bright magenta
    "94", // bright blue
];

/// SGR code for prodserver's own lines: bold, so they stand out from children.
pub const PROJECT_COLOR: &str = "1";

/// The colour decision, pure so it can be tested as a table.
/// `--no-color` wins; then `NO_COLOR` when set and non-empty (per
/// no-color.org, an empty value does not count); otherwise colour iff stdout
/// is a terminal.
pub fn use_color(flag_no_color: bool, no_color_env: Option<&str>, stdout_is_tty: bool) -> bool {
    let env_disables = no_color_env.is_some_and(|v| !v.is_empty());
    !flag_no_color && !env_disables && stdout_is_tty
}

/// The SGR colour code (e.g. `"36"`) for a process name. Stable across runs
/// and machines (FNV-1a, not the std hasher, whose algorithm may change), so
/// `web` keeps its colour from one run to the next; all instances of a
/// process share it.
pub fn color_for(process: &str) -> &'static str {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in process.as_bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    PALETTE[hash as usize % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_color_table() {
        let cases = [
            // flag,  env,          tty,   expected
            (false, None, true, true),
            (false, None, false, false),
            (true, None, true, false),
            (true, None, false, false),
            (false, Some("1"), true, false),
            (false, Some("0"), true, false), // any non-empty value disables
            (false, Some(""), true, true),   // empty value is "unset"
            (false, Some(""), false, false),
            (true, Some(""), true, false),
            (false, Some("1"), false, false),
        ];
        for (flag, env, tty, want) in cases {
            assert_eq!(use_color(flag, env, tty), want, "{flag} {env:?} {tty}");
        }
    }

    #[test]
    fn colors_are_stable_and_from_the_palette() {
        assert_eq!(color_for("web"), color_for("web"));
        for name in ["web", "worker", "beat", "migrate", ""] {
            assert!(PALETTE.contains(&color_for(name)));
        }
        // Pinned: a change here changes every user's colours.
        let pinned = [
            ("web", "96"),
            ("worker", "92"),
            ("beat", "35"),
            ("migrate", "36"),
        ];
        for (name, code) in pinned {
            assert_eq!(color_for(name), code, "{name}");
        }
        let distinct: std::collections::HashSet<_> = ["web", "worker", "beat", "migrate", "flower"]
            .iter()
            .map(|n| color_for(n))
            .collect();
        assert!(distinct.len() >= 3, "palette spread too poor: {distinct:?}");
    }
}
