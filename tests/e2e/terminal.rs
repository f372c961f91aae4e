//! What a person at a terminal sees: progress bars and colour on a terminal, neither in a pipe,
//! and no colour when `NO_COLOR` is set. The terminal is a real pseudo-terminal (`script`).

use std::process::Command;

use crate::Fixture;

/// An SGR sequence (colour, bold): ESC [ digits/semicolons m.
fn has_sgr(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(at, _)| {
        let rest = &text[at + 2..];
        let params = rest.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(rest.len());
        rest[params..].starts_with('m')
    })
}

/// Runs `compose build` for the fixture on a pseudo-terminal and returns what the terminal got.
fn build_on_a_terminal(f: &Fixture, no_color: bool) -> String {
    let out_dir = f.compose.cwd.join(if no_color { "out-plain" } else { "out-colour" });
    let cmd = f.compose.command(&["build", f.recipe_str(), "-o", out_dir.to_str().unwrap()]);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(quote(cmd.get_program())).chain(cmd.get_args().map(quote)).collect();
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &format!("exec {}", line.join(" ")), "/dev/null"]);
    script.env_clear().current_dir(&f.compose.cwd).env("TERM", "xterm-256color");
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value
            && (key != "NO_COLOR" || no_color)
        {
            script.env(key, value);
        }
    }
    let out = script.output().expect("script runs (util-linux)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "build on a terminal failed:\n{said}");
    assert!(said.contains("app:latest for 1 platform"), "{said}");
    said
}

#[test]
fn a_terminal_gets_progress_and_colour_a_pipe_gets_plain_lines() {
    let mut f = Fixture::new(&["app"], "");

    let terminal = build_on_a_terminal(&f, false);
    assert!(has_sgr(&terminal), "no colour on a terminal:\n{terminal:?}");
    assert!(terminal.contains(" packages") && terminal.contains(" layers"), "no progress bars:\n{terminal:?}");

    // A fresh store, so that this build has work to show progress for.
    f.compose.store = f.compose.home.path().join("store-no-color");
    let no_color = build_on_a_terminal(&f, true);
    assert!(!has_sgr(&no_color), "colour despite NO_COLOR:\n{no_color:?}");
    assert!(no_color.contains(" layers"), "NO_COLOR is about colour, the bars stay:\n{no_color:?}");

    // A pipe: the same build, nothing but plain lines (the harness runs compose with piped stderr).
    let piped = f.compose.run(&["build", f.recipe_str(), "-o", f.compose.cwd.join("out-pipe").to_str().unwrap()]);
    let stderr = String::from_utf8(piped.stderr).unwrap();
    assert!(piped.status.success(), "{stderr}");
    assert!(!stderr.contains('\x1b') && !stderr.contains('\r'), "terminal codes in a pipe:\n{stderr:?}");
    assert!(!stderr.contains(" packages\n") && stderr.contains("Built app:latest"), "{stderr}");
}
