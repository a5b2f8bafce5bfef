//! `kaas-join completions` and the hidden `kaas-join manpage`: generated from the clap
//! definition, for packaging (never kept by hand).

use crate::cli::Cli;

/// The completion script for `shell`, from the clap definition.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kaas-join", &mut out);
    out
}

/// The visible subcommands that get a page of their own (kaas-join-NAME(1)).
pub fn manpage_subcommands() -> Vec<String> {
    use clap::CommandFactory as _;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The man page (roff) of kaas-join, or of one subcommand as kaas-join-NAME(1), from the clap
/// definition. `Err` names the subcommands there are.
pub fn manpage(subcommand: Option<&str>) -> Result<Vec<u8>, String> {
    use clap::CommandFactory as _;
    // No `help` subcommand in the pages (it has no page of its own), as clap_mangen's own
    // generate_to does; `build` propagates -v, --help and --version into the subcommands.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .get_subcommands()
                .find(|c| c.get_name() == name && !c.is_hide_set())
                .ok_or_else(|| {
                    format!(
                        "no subcommand {name:?}; the pages are: {}",
                        manpage_subcommands().join(", ")
                    )
                })?;
            // After `build`, its display name is "kaas-join-NAME" (the page's title, as
            // clap_mangen's own generate_to names pages) and its bin name "kaas-join NAME".
            sub.clone()
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("kaas-join {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| format!("cannot render the man page: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_manpage_come_from_the_definition() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::Elvish,
            clap_complete::Shell::PowerShell,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for word in ["join", "run", "status", "--token-file"] {
                assert!(script.contains(word), "{shell}: no {word} in\n{script}");
            }
        }
        let page = String::from_utf8(manpage(None).unwrap()).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        for word in ["kaas\\-join", "join", "run", "status"] {
            assert!(page.contains(word), "no {word} in\n{page}");
        }
        // The hidden subcommand is not advertised.
        assert!(!page.contains("manpage"), "{page}");
        assert!(!manpage_subcommands().contains(&"manpage".to_string()));
        for sub in manpage_subcommands() {
            let page = String::from_utf8(manpage(Some(&sub)).unwrap()).unwrap();
            // roff escapes every hyphen, those of the subcommand's name (`upgrade-kubelet`) too.
            let escaped = sub.replace('-', "\\-");
            assert!(page.contains(&format!("kaas\\-join\\-{escaped}")), "{page}");
        }
        let join = String::from_utf8(manpage(Some("join")).unwrap()).unwrap();
        assert!(join.contains("token\\-file"), "{join}");
        assert!(manpage(Some("manpage")).unwrap_err().contains("join, run"));
    }
}
