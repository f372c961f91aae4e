//! The command line as a shell and `man` see it.

use crate::compose;

#[test]
fn completions_and_man_pages_are_generated_for_every_command() {
    let c = compose();
    for shell in ["bash", "zsh", "fish"] {
        let script = c.ok(&["completions", shell]);
        for command in ["build", "plan", "push", "bundle", "store"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let dir = c.home.path().join("man1");
    c.ok(&["man", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("compose.1")).unwrap();
    assert!(page.contains(".TH compose") && page.contains(r"\-\-trusted\-key"), "{page}");
    assert!(dir.join("compose-store-push.1").is_file() && dir.join("compose-build.1").is_file());
    // Each subcommand's help ends with examples.
    assert!(c.ok(&["build", "--help"]).contains("Examples:"));
}
