//! `mgrctl completions SHELL`: the shell's completion script for mgrctl,
//! generated from the same argument definitions (clap_complete). The only
//! command that asks no manager.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl completions bash > ~/.local/share/bash-completion/completions/mgrctl
  mgrctl completions zsh > ~/.zfunc/_mgrctl          (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  mgrctl completions fish > ~/.config/fish/completions/mgrctl.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    // Generated into memory first: clap_complete panics when its writer
    // fails, and a closed pipe must end quietly like everywhere else.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut crate::Cli::command(), "mgrctl", &mut script);
    let mut out = crate::stdout::lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(0)
}
