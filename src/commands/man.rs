//! `man`: the manual pages, generated from the command-line definitions (the help text is
//! the one source). Prints the main page, or writes one page per command into a folder.
//! Reads no configuration and no database.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::{Outcome, UsageError};
use crate::cli::{Cli, ManArgs};
use crate::output;

impl ManArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        let command = Cli::command().disable_help_subcommand(true);
        let Some(dir) = self.out else {
            let page = render(&clap_mangen::Man::new(command))?;
            output::write_stdout(&String::from_utf8(page)?)?;
            return Ok(Outcome::Done);
        };
        if !dir.is_dir() {
            return Err(UsageError(format!(
                "{} is not an existing folder: create it first (for example ~/.local/share/man/man1)",
                dir.display()
            ))
            .into());
        }
        let pages = pages(command)?;
        for (file_name, page) in &pages {
            write_page(&dir.join(file_name), page)?;
        }
        output::notice(&format!(
            "Wrote {} manual page(s) to {}.",
            pages.len(),
            dir.display()
        ));
        Ok(Outcome::Done)
    }
}

/// Every page by file name: the main one, then one per command (`b2b-convert-plan.1`, named
/// and titled by clap's display names, with `b2b-convert plan` in the synopsis).
fn pages(mut command: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    command.build();
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    std::iter::once(command)
        .chain(subcommands)
        .map(|command| {
            let man = clap_mangen::Man::new(command);
            Ok((man.get_filename(), render(&man)?))
        })
        .collect()
}

fn render(man: &clap_mangen::Man) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    Ok(page)
}

/// Writes a page atomically, readable by everyone as manual pages are (0644).
fn write_page(path: &Path, page: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(page)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
